/* The config file: "key = value" lines read into a struct config, with one
 * warning line per unknown key or bad value; nothing in it is fatal. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "app/config.h"
#include "infer/model.h"

void config_init(struct config *c)
{
    memset(c, 0, sizeof *c);
}

int config_default_path(char *buf, size_t cap)
{
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (x && *x)
        n = snprintf(buf, cap, "%s/ponder/config", x);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.config/ponder/config", home);
    else {
        if (cap)
            buf[0] = 0;
        return ENOENT;
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = 0;
        return ENAMETOOLONG;
    }
    return 0;
}

static void warn_line(FILE *warn, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void warn_line(FILE *warn, const char *name, int line, const char *fmt, ...)
{
    if (!warn)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(warn, "ponder: %s:%d: %s\n", name, line, msg);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return EINVAL;
    *out = v;
    return 0;
}

static int parse_float(const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return EINVAL;
    *out = (float)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return EINVAL;
}

/* Copies s to buf with a leading "~/" (or a lone "~") made $HOME. */
static int expand_home(const char *s, char *buf, size_t cap)
{
    const char *home = getenv("HOME");
    int n;
    if (s[0] == '~' && (s[1] == '/' || !s[1]) && home && *home)
        n = snprintf(buf, cap, "%s%s", home, s + 1);
    else
        n = snprintf(buf, cap, "%s", s);
    return n < 0 || (size_t)n >= cap ? ENAMETOOLONG : 0;
}

static int set_dirs(const char *v, char *buf, size_t cap)
{
    size_t used = 0;
    const char *cur = v;
    char one[CONFIG_STR_MAX], full[CONFIG_STR_MAX];
    buf[0] = 0;
    while (*cur) {
        const char *colon = strchr(cur, ':');
        size_t n = colon ? (size_t)(colon - cur) : strlen(cur);
        if (n >= sizeof one)
            return ENAMETOOLONG;
        memcpy(one, cur, n);
        one[n] = 0;
        cur += n + (colon ? 1 : 0);
        if (!n)
            continue;
        if (expand_home(one, full, sizeof full))
            return ENAMETOOLONG;
        size_t len = strlen(full);
        if (used + len + 2 > cap)
            return ENAMETOOLONG;
        if (used)
            buf[used++] = ':';
        memcpy(buf + used, full, len + 1);
        used += len;
    }
    return 0;
}

/* The next blank-separated word of *cur into buf (cap); false when there is
 * none or it does not fit. */
static bool next_word(const char **cur, char *buf, size_t cap)
{
    const char *s = *cur;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, " \t");
    *cur = s + n;
    if (!n || n >= cap)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return true;
}

/* "remote = NAME URL [KEYFILE]". */
static int set_remote(struct config *c, const char *v, const char *name, int line, FILE *warn)
{
    struct config_remote r;
    char key[1024];
    const char *cur = v;
    memset(&r, 0, sizeof r);
    if (c->n_remotes >= CONFIG_REMOTES_MAX) {
        warn_line(warn, name, line, "more than %d remote lines (ignored)", CONFIG_REMOTES_MAX);
        return 1;
    }
    if (!next_word(&cur, r.name, sizeof r.name) || !next_word(&cur, r.url, sizeof r.url) ||
        (strncmp(r.url, "http://", 7) && strncmp(r.url, "https://", 8))) {
        warn_line(warn, name, line, "remote wants NAME http(s)://HOST[:PORT] [KEYFILE] (ignored)");
        return 1;
    }
    if (next_word(&cur, key, sizeof key) && expand_home(key, r.keyfile, sizeof r.keyfile)) {
        warn_line(warn, name, line, "remote: the key file name is too long (ignored)");
        return 1;
    }
    while (*cur == ' ' || *cur == '\t')
        cur++;
    if (*cur) {
        warn_line(warn, name, line, "remote: unexpected '%s' after the key file (ignored)", cur);
        return 1;
    }
    c->remotes[c->n_remotes++] = r;
    return 0;
}

/* One "key = value" pair; a warning and no change when the value is bad. */
static int config_set(struct config *c, const char *key, const char *v, const char *name,
                      int line, FILE *warn)
{
    long l;
    float f;
    bool b;
    if (!strcmp(key, "model_dirs")) {
        char tmp[CONFIG_STR_MAX];
        if (!set_dirs(v, tmp, sizeof tmp)) {
            memcpy(c->model_dirs, tmp, sizeof tmp);
            return 0;
        }
        warn_line(warn, name, line, "model_dirs is too long (ignored)");
        return 1;
    }
    if (!strcmp(key, "default_model")) {
        char tmp[CONFIG_STR_MAX];
        if (*v && !expand_home(v, tmp, sizeof tmp)) {
            memcpy(c->default_model, tmp, sizeof tmp);
            return 0;
        }
        warn_line(warn, name, line, "default_model wants a path or a model name (ignored)");
        return 1;
    }
    if (!strcmp(key, "favourites")) {
        int n = snprintf(c->favourites, sizeof c->favourites, "%s", v);
        if (n >= 0 && (size_t)n < sizeof c->favourites)
            return 0;
        c->favourites[0] = 0;
        warn_line(warn, name, line, "favourites is too long (ignored)");
        return 1;
    }
    if (!strcmp(key, "ctx")) {
        if (!parse_long(v, 16, 1L << 24, &l)) {
            c->ctx = (int)l;
            c->has_ctx = true;
            return 0;
        }
        warn_line(warn, name, line, "ctx wants a number of tokens from 16, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "threads")) {
        if (!parse_long(v, 1, 512, &l)) {
            c->threads = (int)l;
            c->has_threads = true;
            return 0;
        }
        warn_line(warn, name, line, "threads wants a number from 1 to 512, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "top_k")) {
        if (!parse_long(v, 0, INT_MAX, &l)) {
            c->top_k = (int)l;
            c->has_top_k = true;
            return 0;
        }
        warn_line(warn, name, line, "top_k wants a number >= 0, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "backend")) {
        int be = !strcmp(v, "auto")     ? MODEL_BACKEND_AUTO
                 : !strcmp(v, "cpu")    ? MODEL_BACKEND_CPU
                 : !strcmp(v, "vulkan") ? MODEL_BACKEND_VULKAN
                                        : -1;
        if (be >= 0) {
            c->backend = be;
            c->has_backend = true;
            return 0;
        }
        warn_line(warn, name, line, "backend is auto, cpu or vulkan, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "temp")) {
        if (!parse_float(v, 0, 100, &f)) {
            c->temp = f;
            c->has_temp = true;
            return 0;
        }
        warn_line(warn, name, line, "temp wants a number from 0 to 100, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "top_p") || !strcmp(key, "min_p")) {
        bool top = key[0] == 't';
        if (!parse_float(v, 0, 1, &f)) {
            *(top ? &c->top_p : &c->min_p) = f;
            *(top ? &c->has_top_p : &c->has_min_p) = true;
            return 0;
        }
        warn_line(warn, name, line, "%s wants a number from 0 to 1, not '%s' (ignored)", key, v);
        return 1;
    }
    if (!strcmp(key, "fold_reasoning")) {
        if (!parse_bool(v, &b)) {
            c->fold_reasoning = b;
            c->has_fold_reasoning = true;
            return 0;
        }
        warn_line(warn, name, line, "fold_reasoning is true or false, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "mouse")) {
        if (!parse_bool(v, &b)) {
            c->mouse = b;
            c->has_mouse = true;
            return 0;
        }
        warn_line(warn, name, line, "mouse is true or false, not '%s' (ignored)", v);
        return 1;
    }
    if (!strcmp(key, "remote"))
        return set_remote(c, v, name, line, warn);
    warn_line(warn, name, line, "unknown key '%s' (ignored)", key);
    return 1;
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Trims [*s, *e) in place. */
static void trim(const char **s, const char **e)
{
    while (*s < *e && is_space(**s))
        (*s)++;
    while (*e > *s && is_space((*e)[-1]))
        (*e)--;
}

int config_parse(struct config *c, const char *text, size_t len, const char *name, FILE *warn)
{
    int warnings = 0, line = 0;
    const char *p = text, *end = text + len;
    char key[64], val[CONFIG_STR_MAX];
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *ls = p, *le = nl ? nl : end;
        p = nl ? nl + 1 : end;
        if (line < INT_MAX)
            line++;
        trim(&ls, &le);
        if (ls == le || *ls == '#')
            continue;
        const char *eq = memchr(ls, '=', (size_t)(le - ls));
        if (!eq) {
            warn_line(warn, name, line, "expected 'key = value' (ignored)");
            warnings++;
            continue;
        }
        const char *ks = ls, *ke = eq, *vs = eq + 1, *ve = le;
        trim(&ks, &ke);
        trim(&vs, &ve);
        size_t kn = (size_t)(ke - ks);
        if (kn == 0 || kn >= sizeof key || memchr(ks, 0, kn)) {
            warn_line(warn, name, line, kn ? "key too long (ignored)" : "no key before '=' (ignored)");
            warnings++;
            continue;
        }
        memcpy(key, ks, kn);
        key[kn] = 0;
        if (ve - vs >= 1 && *vs == '"') {
            if (ve - vs < 2 || ve[-1] != '"') {
                warn_line(warn, name, line, "%s: unterminated quote (ignored)", key);
                warnings++;
                continue;
            }
            vs++;
            ve--;
        }
        size_t vn = (size_t)(ve - vs);
        if (vn >= sizeof val || memchr(vs, 0, vn)) {
            warn_line(warn, name, line, "%s: value too long (ignored)", key);
            warnings++;
            continue;
        }
        memcpy(val, vs, vn);
        val[vn] = 0;
        warnings += config_set(c, key, val, name, line, warn);
    }
    return warnings;
}

int config_load_file(struct config *c, const char *path, FILE *warn, int *n_warnings, char *err,
                     size_t errlen)
{
    int rc = 0, w = 0;
    char *text = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            goto out;
        rc = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(rc));
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= (size_t)1 << 24) {
                rc = EFBIG;
                snprintf(err, errlen, "%s: larger than 16 MiB", path);
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            char *t = realloc(text, ncap);
            if (!t) {
                rc = ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            text = t;
            cap = ncap;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    w = config_parse(c, text ? text : "", len, path, warn);
out:
    if (f)
        fclose(f);
    free(text);
    if (n_warnings)
        *n_warnings = w;
    return rc;
}

int config_load(struct config *c, FILE *warn)
{
    char path[CONFIG_STR_MAX], err[512];
    int w = 0;
    config_init(c);
    if (config_default_path(path, sizeof path))
        return 0;
    if (config_load_file(c, path, warn, &w, err, sizeof err)) {
        if (warn)
            fprintf(warn, "ponder: %s (config ignored)\n", err);
        w++;
    }
    return w;
}

bool config_next_dir(const char **cur, char *buf, size_t cap)
{
    while (**cur) {
        const char *s = *cur, *colon = strchr(s, ':');
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        *cur = s + n + (colon ? 1 : 0);
        if (n == 0 || n >= cap)
            continue;
        memcpy(buf, s, n);
        buf[n] = 0;
        return true;
    }
    return false;
}
