/* Chat format: turns a conversation into the prompt text and token ids a
 * model was trained on.  The format is recognised from the model's template
 * text (tokenizer.chat_template, a Jinja string that ponder never executes);
 * ponder knows one, DeepSeek-R1's (the R1-Distill Qwen and Llama models and
 * the 671B share it):
 *
 *   "<｜begin▁of▁sentence｜>" + system
 *   + per user message       "<｜User｜>" + content
 *   + per assistant message  "<｜Assistant｜>" + kept(content) + "<｜end▁of▁sentence｜>"
 *   + with a generation prompt "<｜Assistant｜><think>\n"
 *     (or, thinking off, "<｜Assistant｜><think>\n\n</think>\n\n": an empty
 *     reasoning block, the R1 idiom for answering directly)
 *
 * system is the content of the last system message ("" if none; system
 * messages render nothing where they occur; R1's own template would join
 * several with "\n\n", ponder sends at most one).  kept(c) is the part of c
 * after its last "</think>", or all of c when it has none (the reasoning of
 * earlier replies is not fed back).  The scaffolding is tokenized with its
 * control tokens; message text is tokenized as plain text, so a user who types
 * "<｜User｜>" or "<think>" gets ordinary text tokens. */
#ifndef PONDER_CHAT_H
#define PONDER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

struct tokenizer;
struct tokens;

enum chat_format {
    CHAT_FORMAT_DEEPSEEK_R1
};

enum chat_role {
    CHAT_ROLE_SYSTEM,
    CHAT_ROLE_USER,
    CHAT_ROLE_ASSISTANT
};

struct chat_msg {
    enum chat_role role;
    const char *content;   /* NUL-terminated UTF-8 */
};

/* Recognises the format from the template text (len bytes, need not be
 * NUL-terminated; NULL when the model has none).  0, or ENOTSUP (no template,
 * or one ponder does not know): the library does not guess; app/ may fall
 * back to CHAT_FORMAT_DEEPSEEK_R1 and print a warning, since ponder is made
 * for R1 models. */
int chat_detect(const char *template_text, size_t len, enum chat_format *out, char *err,
                size_t errlen);

const char *chat_format_name(enum chat_format f);   /* "deepseek-r1" */

/* Whether the generation prompt leaves the model inside its reasoning (it
 * ends with "<think>\n"): the flag for reason_init(). */
bool chat_prompt_opens_reasoning(enum chat_format f);

/* Appends the ids of the rendered conversation msgs[0..n) to ids, and when
 * text is not NULL sets *text to the rendered text (malloc'd, NUL-terminated,
 * the caller frees it).  0, or EINVAL (unknown role, NULL content), ENOTSUP
 * (the vocabulary lacks a token the format needs: begin/end of sentence,
 * User, Assistant, <think>), ENOMEM.  On error ids is as it was and *text is
 * NULL. */
int chat_render(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
                size_t n, bool add_generation_prompt, struct tokens *ids, char **text,
                char *err, size_t errlen);

/* How a rendered prompt ends. */
enum chat_gen {
    CHAT_GEN_NONE,        /* no generation prompt */
    CHAT_GEN_THINK,       /* "<｜Assistant｜><think>\n": the model reasons first */
    CHAT_GEN_THINK_OFF    /* "<｜Assistant｜><think>\n\n</think>\n\n": the reply is
                             the answer only (also needs a </think> token) */
};

/* chat_render() with the ending chosen by gen (chat_render's
 * add_generation_prompt is CHAT_GEN_THINK or CHAT_GEN_NONE).  Errors as
 * chat_render(). */
int chat_render_gen(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
                    size_t n, enum chat_gen gen, struct tokens *ids, char **text, char *err,
                    size_t errlen);

#endif
