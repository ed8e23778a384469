/* Reasoning splitter: labels streamed text reasoning or answer at <think> and
 * </think>, holding back a possible partial tag until the next piece. */
#include "infer/reason.h"

static const char tag_open[] = "<think>";
static const char tag_close[] = "</think>";

void reason_init(struct reason *r, bool starts_in_reasoning)
{
    r->state = starts_in_reasoning ? REASON_STATE_REASONING : REASON_STATE_OPEN;
    r->held = 0;
    r->started[0] = r->started[1] = false;
    r->untagged = false;
}

void reason_init_unopened(struct reason *r)
{
    reason_init(r, false);
    r->state = REASON_STATE_UNOPENED;
}

enum reason_kind reason_kind_now(const struct reason *r)
{
    return r->state == REASON_STATE_REASONING || r->state == REASON_STATE_UNOPENED
               ? REASON_KIND_REASONING : REASON_KIND_ANSWER;
}

/* The tag the current state looks for, NULL when none. */
static const char *tag_now(const struct reason *r)
{
    switch (r->state) {
    case REASON_STATE_OPEN:
    case REASON_STATE_UNOPENED:
        return tag_open;
    case REASON_STATE_REASONING:
        return tag_close;
    case REASON_STATE_ANSWER:
        break;
    }
    return NULL;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Emits text as the current kind, its leading whitespace as its own span. */
static void emit_text(struct reason *r, const char *text, size_t len, reason_emit_fn emit,
                      void *ctx)
{
    enum reason_kind kind = reason_kind_now(r);
    size_t i = 0;
    if (len == 0)
        return;
    if (!r->started[kind]) {
        while (i < len && is_space(text[i]))
            i++;
        if (i > 0)
            emit(ctx, &(struct reason_span){ kind, text, i, true });
        if (i < len)
            r->started[kind] = true;
    }
    if (i < len)
        emit(ctx, &(struct reason_span){ kind, text + i, len - i, false });
}

void reason_push(struct reason *r, const char *piece, size_t len, reason_emit_fn emit, void *ctx)
{
    size_t run = 0;                /* start of the piece's text not yet emitted */
    unsigned carried = r->held;    /* tag bytes held from earlier pieces (not in piece) */
    for (size_t i = 0; i < len; i++) {
        const char *tag = tag_now(r);
        if (!tag)
            break;   /* the answer for good: the rest is text */
        char c = piece[i];
        if (c == tag[r->held]) {
            if (tag[++r->held] == 0) {
                /* the tag ends here: what came before it is settled */
                size_t in_piece = r->held - carried;
                emit_text(r, piece + run, i + 1 - in_piece - run, emit, ctx);
                r->state = r->state == REASON_STATE_OPEN || r->state == REASON_STATE_UNOPENED
                               ? REASON_STATE_REASONING : REASON_STATE_ANSWER;
                r->held = carried = 0;
                run = i + 1;
            }
            continue;
        }
        if (r->state == REASON_STATE_UNOPENED && r->held == 1 && c == tag_close[1]) {
            /* "</": no "<think>" but perhaps its "</think>" (tag_close[0] ==
             * tag_open[0], so the held byte stays held) */
            r->state = REASON_STATE_REASONING;
            r->untagged = true;
            r->held = 2;
            continue;
        }
        if (r->held) {
            /* not the tag after all: the held bytes are text.  Those from
             * earlier pieces come first (run is still 0: everything in the
             * piece so far was part of the match). */
            if (carried)
                emit_text(r, tag, carried, emit, ctx);
            carried = 0;
            r->held = 0;
            if (r->state == REASON_STATE_OPEN) {
                r->state = REASON_STATE_ANSWER;   /* "<thi..." is answer text */
                continue;
            }
            if (r->state == REASON_STATE_UNOPENED) {
                /* "<thi..." is reasoning text; c may begin "</think>" */
                r->state = REASON_STATE_REASONING;
                r->untagged = true;
            }
        }
        if (c == tag[0])
            r->held = 1;
        else if (r->state == REASON_STATE_OPEN && !is_space(c))
            r->state = REASON_STATE_ANSWER;
        else if (r->state == REASON_STATE_UNOPENED && !is_space(c)) {
            r->state = REASON_STATE_REASONING;
            r->untagged = true;
        }
    }
    emit_text(r, piece + run, len - (r->held - carried) - run, emit, ctx);
}

void reason_flush(struct reason *r, reason_emit_fn emit, void *ctx)
{
    const char *tag = tag_now(r);
    if (tag && r->held)
        emit_text(r, tag, r->held, emit, ctx);
    r->held = 0;
}
