/* Reasoning splitter: a streaming state machine that labels the text a model
 * generates as reasoning or answer, from the <think> and </think> tags in it.
 *
 * It works on text pieces (the detokenized bytes of each token), because a
 * model may write a tag as one token or as several ("</", "think", ">"): a
 * piece that ends in what could be the start of a tag is held back until the
 * next piece settles it, so a span never holds part of a tag.  The tags
 * themselves are never emitted; every other byte is, exactly once and in
 * order: the spans concatenated equal the input with the recognised tags
 * removed.  Nothing is stripped.
 *
 * States: a splitter made with starts_in_reasoning (the prompt ended with
 * "<think>\n", as the R1 template's generation prompt does) is in reasoning;
 * otherwise it is in the answer and enters reasoning on a "<think>" that comes
 * before any answer text other than whitespace (a later "<think>" is answer
 * text).  Reasoning ends at the first "</think>"; after that everything is
 * answer, tags included.  A "</think>" in the answer is answer text.
 *
 * A splitter made with reason_init_unopened() is for text whose "<think>"
 * may have been in the prompt, where the reply cannot be seen (a server
 * that applies R1's template itself): the text is reasoning from the start;
 * a "<think>" before any text other than whitespace opens it as usual (and
 * is dropped), any other text is reasoning without one (untagged), and in
 * both cases it ends at the first "</think>".
 *
 * Whitespace (space, tab, CR, LF) at the start of each part (before its first
 * other byte) is emitted as spans with `leading` set, so an interface can
 * skip the "\n\n" R1 writes after "</think>" while a store keeps the text as
 * written.  Usage: reason_init(&r, true); per token reason_push(&r, piece,
 * len, emit, ctx); at the end reason_flush(&r, emit, ctx), which emits a held
 * partial tag as text.  struct reason is plain data: copy it, no free. */
#ifndef PONDER_REASON_H
#define PONDER_REASON_H

#include <stdbool.h>
#include <stddef.h>

enum reason_kind {
    REASON_KIND_REASONING,
    REASON_KIND_ANSWER
};

/* One piece of labelled text.  text points into the pushed piece or into a
 * constant; it is valid only during the callback. */
struct reason_span {
    enum reason_kind kind;
    const char *text;
    size_t len;
    bool leading;   /* only whitespace, and nothing but whitespace before it in this part */
};

typedef void (*reason_emit_fn)(void *ctx, const struct reason_span *span);

enum reason_state {
    REASON_STATE_OPEN,        /* answer, a "<think>" may still open reasoning */
    REASON_STATE_REASONING,   /* inside the think block */
    REASON_STATE_ANSWER,      /* answer, for good */
    REASON_STATE_UNOPENED     /* reasoning, a "<think>" may still open it explicitly */
};

struct reason {
    enum reason_state state;
    unsigned held;            /* bytes of the tag being matched, held back */
    bool started[2];          /* per kind: a byte other than whitespace was emitted */
    bool untagged;            /* the reasoning began without a "<think>" (unopened) */
};

void reason_init(struct reason *r, bool starts_in_reasoning);
void reason_init_unopened(struct reason *r);
void reason_push(struct reason *r, const char *piece, size_t len, reason_emit_fn emit, void *ctx);
void reason_flush(struct reason *r, reason_emit_fn emit, void *ctx);

/* What the next text byte would be: reasoning or answer.  The engine uses it
 * to count reasoning and answer tokens and to send PHASE events. */
enum reason_kind reason_kind_now(const struct reason *r);

#endif
