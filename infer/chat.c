/* Chat format: recognises DeepSeek-R1's template text and renders a
 * conversation to prompt text and ids (control tokens for the scaffolding,
 * plain text for what people and models wrote). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/err.h"
#include "infer/chat.h"
#include "infer/ckd.h"
#include "infer/tokenizer.h"

#define R1_BOS "<｜begin▁of▁sentence｜>"
#define R1_EOS "<｜end▁of▁sentence｜>"
#define R1_USER "<｜User｜>"
#define R1_ASSISTANT "<｜Assistant｜>"
#define R1_THINK "<think>"
#define R1_THINK_END "</think>"


/* Whether hay[0..n) holds needle (memmem is a GNU extension). */
static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

int chat_detect(const char *template_text, size_t len, enum chat_format *out, char *err,
                size_t errlen)
{
    if (!template_text || len == 0)
        return err_set(err, errlen, ENOTSUP, "the model has no chat template");
    if (contains(template_text, len, R1_USER) && contains(template_text, len, R1_ASSISTANT)) {
        *out = CHAT_FORMAT_DEEPSEEK_R1;
        return 0;
    }
    return err_set(err, errlen, ENOTSUP,
                "unknown chat template (not DeepSeek-R1's: no " R1_USER " and " R1_ASSISTANT ")");
}

const char *chat_format_name(enum chat_format f)
{
    switch (f) {
    case CHAT_FORMAT_DEEPSEEK_R1:
        return "deepseek-r1";
    }
    return "unknown";
}

bool chat_prompt_opens_reasoning(enum chat_format f)
{
    return f == CHAT_FORMAT_DEEPSEEK_R1;
}

/* The rendered text, built only when the caller asked for it. */
struct text {
    bool want;
    char *p;
    size_t n, cap;
};

static int text_put(struct text *b, const char *s, size_t len)
{
    if (!b->want)
        return 0;
    size_t need;
    if (ckd_add_size(&need, b->n, len) || ckd_add_size(&need, need, 1))
        return ENOMEM;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            if (ckd_mul_size(&cap, cap, 2))
                return ENOMEM;
        char *p = realloc(b->p, cap);
        if (!p)
            return ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

struct r1_ids {
    int32_t bos, eos, user, assistant, think;
};

static int find_token(const struct tokenizer *t, const char *s, int32_t *id, char *err,
                      size_t errlen)
{
    *id = tokenizer_find(t, s, strlen(s));
    if (*id < 0)
        return err_set(err, errlen, ENOTSUP,
                    "the vocabulary has no %s token, which the DeepSeek-R1 chat format needs", s);
    return 0;
}

/* Message text as plain text: the plain rule matches no added token at all
 * (tokenizer_encode with parse_special false would still match USER_DEFINED
 * ones such as <think>), so a user who types "<think>" gets ordinary text. */
static int encode_plain(const struct tokenizer *t, const char *s, size_t len, struct tokens *ids,
                        char *err, size_t errlen)
{
    if (len == 0)
        return 0;
    return tokenizer_encode_plain(t, s, len, ids, err, errlen);
}

/* A scaffolding span: its control token's id, and its text. */
static int put_control(struct tokens *ids, struct text *b, int32_t id, const char *s)
{
    int rc = tokens_push(ids, id);
    return rc ? rc : text_put(b, s, strlen(s));
}

/* A content span: the text, then its plain ids. */
static int put_content(const struct tokenizer *t, struct tokens *ids, struct text *b,
                       const char *s, size_t len, char *err, size_t errlen)
{
    int rc = text_put(b, s, len);
    if (rc)
        return err_set(err, errlen, rc, "out of memory rendering the chat");
    return encode_plain(t, s, len, ids, err, errlen);
}

/* The part of an assistant reply the template keeps: after its last "</think>". */
static const char *kept(const char *c)
{
    const char *k = c, *p;
    while ((p = strstr(k, R1_THINK_END)) != NULL)
        k = p + strlen(R1_THINK_END);
    return k;
}

static int render_r1(const struct tokenizer *t, const struct chat_msg *msgs, size_t n,
                     enum chat_gen gen, struct tokens *ids, struct text *b, char *err,
                     size_t errlen)
{
    struct r1_ids id;
    int32_t think_end = -1;
    int rc;
    if (gen == CHAT_GEN_THINK_OFF && (rc = find_token(t, R1_THINK_END, &think_end, err, errlen)))
        return rc;
    if ((rc = find_token(t, R1_BOS, &id.bos, err, errlen)) ||
        (rc = find_token(t, R1_EOS, &id.eos, err, errlen)) ||
        (rc = find_token(t, R1_USER, &id.user, err, errlen)) ||
        (rc = find_token(t, R1_ASSISTANT, &id.assistant, err, errlen)) ||
        (rc = find_token(t, R1_THINK, &id.think, err, errlen)))
        return rc;

    const char *system = "";
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].role != CHAT_ROLE_SYSTEM && msgs[i].role != CHAT_ROLE_USER &&
            msgs[i].role != CHAT_ROLE_ASSISTANT)
            return err_set(err, errlen, EINVAL, "message %zu: unknown role %d", i, (int)msgs[i].role);
        if (!msgs[i].content)
            return err_set(err, errlen, EINVAL, "message %zu: no content", i);
        if (msgs[i].role == CHAT_ROLE_SYSTEM)
            system = msgs[i].content;
    }

    if ((rc = put_control(ids, b, id.bos, R1_BOS)))
        goto oom;
    if ((rc = put_content(t, ids, b, system, strlen(system), err, errlen)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *c = msgs[i].content;
        switch (msgs[i].role) {
        case CHAT_ROLE_SYSTEM:
            break;
        case CHAT_ROLE_USER:
            if ((rc = put_control(ids, b, id.user, R1_USER)))
                goto oom;
            if ((rc = put_content(t, ids, b, c, strlen(c), err, errlen)))
                return rc;
            break;
        case CHAT_ROLE_ASSISTANT:
            c = kept(c);
            if ((rc = put_control(ids, b, id.assistant, R1_ASSISTANT)))
                goto oom;
            if ((rc = put_content(t, ids, b, c, strlen(c), err, errlen)))
                return rc;
            if ((rc = put_control(ids, b, id.eos, R1_EOS)))
                goto oom;
            break;
        }
    }
    if (gen == CHAT_GEN_THINK || gen == CHAT_GEN_THINK_OFF) {
        if ((rc = put_control(ids, b, id.assistant, R1_ASSISTANT)) ||
            (rc = put_control(ids, b, id.think, R1_THINK)))
            goto oom;
        /* thinking off: the empty block is written the way R1 writes it,
         * "\n\n" as one piece of text on each side of </think> */
        const char *nl = gen == CHAT_GEN_THINK ? "\n" : "\n\n";
        if ((rc = put_content(t, ids, b, nl, strlen(nl), err, errlen)))
            return rc;
        if (gen == CHAT_GEN_THINK_OFF) {
            if ((rc = put_control(ids, b, think_end, R1_THINK_END)))
                goto oom;
            if ((rc = put_content(t, ids, b, "\n\n", 2, err, errlen)))
                return rc;
        }
    }
    return 0;
oom:
    return err_set(err, errlen, rc, "out of memory rendering the chat");
}

int chat_render(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
                size_t n, bool add_generation_prompt, struct tokens *ids, char **text,
                char *err, size_t errlen)
{
    return chat_render_gen(f, t, msgs, n, add_generation_prompt ? CHAT_GEN_THINK : CHAT_GEN_NONE,
                           ids, text, err, errlen);
}

int chat_render_gen(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
                    size_t n, enum chat_gen gen, struct tokens *ids, char **text, char *err,
                    size_t errlen)
{
    struct text b = { .want = text != NULL };
    size_t n0 = ids->n;
    int rc;
    if (text)
        *text = NULL;
    switch (f) {
    case CHAT_FORMAT_DEEPSEEK_R1:
        rc = render_r1(t, msgs, n, gen, ids, &b, err, errlen);
        break;
    default:
        rc = err_set(err, errlen, EINVAL, "unknown chat format %d", (int)f);
        break;
    }
    if (rc == 0 && b.want && !b.p)
        rc = text_put(&b, "", 0) ? err_set(err, errlen, ENOMEM, "out of memory rendering the chat")
                                 : 0;
    if (rc) {
        ids->n = n0;
        free(b.p);
        return rc;
    }
    if (text)
        *text = b.p;
    return 0;
}
