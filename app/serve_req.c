/* ponder serve's request parser: JSON body -> struct serve_req, every field
 * checked for type and range (see serve_req.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/serve_req.h"

struct parse {
    char *param, *err;
    size_t paramlen, errlen;
};

static int fail(struct parse *p, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parse *p, int code, const char *param, const char *fmt, ...)
{
    if (p->paramlen)
        snprintf(p->param, p->paramlen, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* The field, or NULL when absent or null. */
static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_bool(struct parse *p, json_t *o, const char *key, bool *out)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(p, EINVAL, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

static int get_float(struct parse *p, json_t *o, const char *key, double lo, double hi, bool *has,
                     float *out)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return fail(p, EINVAL, key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return fail(p, EINVAL, key, "'%s' must be between %g and %g", key, lo, hi);
    *out = (float)d;
    *has = true;
    return 0;
}

static int get_int(struct parse *p, json_t *o, const char *key, long long lo, long long hi,
                   bool *has, long long *out)
{
    json_t *v = field(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(p, EINVAL, key, "'%s' must be an integer", key);
    long long n = json_integer_value(v);
    if (n < lo || n > hi)
        return fail(p, EINVAL, key, "'%s' must be between %lld and %lld", key, lo, hi);
    *out = n;
    *has = true;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A message's content: a string, or an array of {type: "text", text} parts
 * joined without separators. */
static int content_text(struct parse *p, json_t *c, char **out)
{
    if (json_is_string(c)) {
        *out = dup_n(json_string_value(c), json_string_length(c));
        return *out ? 0 : fail(p, ENOMEM, NULL, "out of memory");
    }
    if (!json_is_array(c))
        return fail(p, EINVAL, "messages", "a message's content must be a string or an array");
    size_t total = 0, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") || !json_is_string(text))
            return fail(p, EINVAL, "messages",
                        "content part %zu: only {\"type\": \"text\", \"text\": ...} is supported",
                        i);
        total += json_string_length(text);   /* bounded by the body size */
    }
    char *s = malloc(total + 1);
    if (!s)
        return fail(p, ENOMEM, NULL, "out of memory");
    size_t at = 0;
    json_array_foreach(c, i, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(s + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    s[at] = 0;
    *out = s;
    return 0;
}

static int parse_messages(struct parse *p, json_t *root, struct serve_req *r)
{
    json_t *m = field(root, "messages");
    if (!m)
        return fail(p, EINVAL, "messages", "'messages' is required");
    if (!json_is_array(m) || json_array_size(m) == 0)
        return fail(p, EINVAL, "messages", "'messages' must be a non-empty array");
    size_t n = json_array_size(m);
    if (n > SERVE_REQ_MAX_MESSAGES)
        return fail(p, EINVAL, "messages", "at most %d messages", SERVE_REQ_MAX_MESSAGES);
    r->msgs = calloc(n, sizeof *r->msgs);
    if (!r->msgs)
        return fail(p, ENOMEM, NULL, "out of memory");
    bool any_user = false;
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        if (!json_is_object(msg))
            return fail(p, EINVAL, "messages", "message %zu is not an object", i);
        json_t *role = json_object_get(msg, "role");
        if (!json_is_string(role))
            return fail(p, EINVAL, "messages", "message %zu has no role", i);
        const char *rs = json_string_value(role);
        enum chat_role cr;
        if (!strcmp(rs, "system") || !strcmp(rs, "developer"))
            cr = CHAT_ROLE_SYSTEM;
        else if (!strcmp(rs, "user"))
            cr = CHAT_ROLE_USER;
        else if (!strcmp(rs, "assistant"))
            cr = CHAT_ROLE_ASSISTANT;
        else
            return fail(p, EINVAL, "messages",
                        "message %zu: role must be system, user or assistant", i);
        any_user |= cr == CHAT_ROLE_USER;
        json_t *c = json_object_get(msg, "content");
        char *text = NULL;
        int rc;
        if (!c || json_is_null(c)) {
            if (cr != CHAT_ROLE_ASSISTANT)
                return fail(p, EINVAL, "messages", "message %zu has no content", i);
            text = dup_n("", 0);
            rc = text ? 0 : fail(p, ENOMEM, NULL, "out of memory");
        } else {
            rc = content_text(p, c, &text);
        }
        if (rc)
            return rc;
        r->msgs[r->n_msgs++] = (struct chat_msg){cr, text};
    }
    if (!any_user)
        return fail(p, EINVAL, "messages", "'messages' needs at least one user message");
    return 0;
}

static int parse_prompt(struct parse *p, json_t *root, struct serve_req *r)
{
    json_t *v = field(root, "prompt");
    if (v && json_is_array(v) && json_array_size(v) == 1)
        v = json_array_get(v, 0);
    if (!v || !json_is_string(v))
        return fail(p, EINVAL, "prompt", "'prompt' must be a string");
    if (json_string_length(v) == 0)
        return fail(p, EINVAL, "prompt", "'prompt' is empty");
    r->msgs = calloc(1, sizeof *r->msgs);
    char *text = dup_n(json_string_value(v), json_string_length(v));
    if (!r->msgs || !text) {
        free(text);
        return fail(p, ENOMEM, NULL, "out of memory");
    }
    r->msgs[0] = (struct chat_msg){CHAT_ROLE_USER, text};
    r->n_msgs = 1;
    return 0;
}

static int add_stop(struct parse *p, struct serve_req *r, json_t *s)
{
    if (!json_is_string(s) || json_string_length(s) == 0)
        return fail(p, EINVAL, "stop", "each stop sequence must be a non-empty string");
    if (json_string_length(s) > SERVE_REQ_STOP_LEN)
        return fail(p, EINVAL, "stop", "a stop sequence has at most %d bytes",
                    SERVE_REQ_STOP_LEN);
    if (r->n_stop == SERVE_REQ_MAX_STOP)
        return fail(p, EINVAL, "stop", "at most %d stop sequences", SERVE_REQ_MAX_STOP);
    if (!(r->stop[r->n_stop] = dup_n(json_string_value(s), json_string_length(s))))
        return fail(p, ENOMEM, NULL, "out of memory");
    r->n_stop++;
    return 0;
}

static int parse_fields(struct parse *p, json_t *root, int max_tokens_limit, struct serve_req *r)
{
    json_t *v;
    int rc;
    if ((v = field(root, "model"))) {
        if (!json_is_string(v))
            return fail(p, EINVAL, "model", "'model' must be a string");
        if (!(r->model = dup_n(json_string_value(v), json_string_length(v))))
            return fail(p, ENOMEM, NULL, "out of memory");
    }
    if ((rc = r->kind == SERVE_REQ_CHAT ? parse_messages(p, root, r) : parse_prompt(p, root, r)))
        return rc;
    if ((rc = get_bool(p, root, "stream", &r->stream)))
        return rc;
    if ((v = field(root, "stream_options"))) {
        if (!json_is_object(v))
            return fail(p, EINVAL, "stream_options", "'stream_options' must be an object");
        if ((rc = get_bool(p, v, "include_usage", &r->include_usage)))
            return rc;
    }
    if ((rc = get_float(p, root, "temperature", 0, 2, &r->has_temperature, &r->temperature)) ||
        (rc = get_float(p, root, "top_p", 0, 1, &r->has_top_p, &r->top_p)) ||
        (rc = get_float(p, root, "min_p", 0, 1, &r->has_min_p, &r->min_p)) ||
        (rc = get_float(p, root, "repeat_penalty", 0.01, 100, &r->has_repeat_penalty,
                        &r->repeat_penalty)))
        return rc;
    long long n = 0;
    bool has = false;
    if ((rc = get_int(p, root, "top_k", 0, 1 << 20, &r->has_top_k, &n)))
        return rc;
    if (r->has_top_k)
        r->top_k = (int)n;
    const char *mt_key = field(root, "max_completion_tokens") ? "max_completion_tokens"
                                                              : "max_tokens";
    if ((rc = get_int(p, root, mt_key, 1, max_tokens_limit > 0 ? max_tokens_limit : 1, &has, &n)))
        return rc;
    r->max_tokens = has ? (int)n : -1;
    has = false;
    if ((rc = get_int(p, root, "seed", 0, INT64_MAX, &r->has_seed, &n)))
        return rc;
    if (r->has_seed)
        r->seed = (uint64_t)n;
    if ((rc = get_int(p, root, "n", 1, 1, &has, &n)))
        return fail(p, EINVAL, "n", "only n = 1 is supported");
    if ((v = field(root, "stop"))) {
        if (json_is_string(v)) {
            if ((rc = add_stop(p, r, v)))
                return rc;
        } else if (json_is_array(v)) {
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                if ((rc = add_stop(p, r, s)))
                    return rc;
            }
        } else {
            return fail(p, EINVAL, "stop", "'stop' must be a string or an array of strings");
        }
    }
    if ((rc = get_int(p, root, "think_budget", 0, 1 << 24, &has, &n)))
        return rc;
    if (has)
        r->think_budget = (int)n;
    if ((v = field(root, "think_mode"))) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(s, "soft"))
            r->think_mode = 0;
        else if (!strcmp(s, "hard"))
            r->think_mode = 1;
        else
            return fail(p, EINVAL, "think_mode", "'think_mode' must be \"soft\" or \"hard\"");
    }
    if ((v = field(root, "think"))) {
        if (json_is_boolean(v))
            r->think_off = !json_is_true(v);
        else if (json_is_string(v) && !strcmp(json_string_value(v), "off"))
            r->think_off = true;
        else if (json_is_string(v) && !strcmp(json_string_value(v), "on"))
            r->think_off = false;
        else
            return fail(p, EINVAL, "think", "'think' must be \"on\" or \"off\"");
    }
    return 0;
}

int serve_req_parse(enum serve_req_kind kind, const char *body, size_t len, int max_tokens_limit,
                    struct serve_req *out, char *param, size_t paramlen, char *err,
                    size_t errlen)
{
    struct parse p = {param, err, paramlen, errlen};
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    if (paramlen)
        param[0] = 0;
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(&p, EBADMSG, NULL, "malformed JSON at byte %d: %s", je.position, je.text);
    int rc;
    if (!json_is_object(root))
        rc = fail(&p, EBADMSG, NULL, "the body must be a JSON object");
    else
        rc = parse_fields(&p, root, max_tokens_limit, out);
    json_decref(root);
    if (rc)
        serve_req_free(out);
    return rc;
}

void serve_req_free(struct serve_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_msgs; i++)
        free((char *)r->msgs[i].content);
    free(r->msgs);
    free(r->model);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    enum serve_req_kind kind = r->kind;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
}
