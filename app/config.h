/* The config file, $XDG_CONFIG_HOME/ponder/config (~/.config/ponder/config
 * when unset): "key = value" lines, '#' comment lines, blank lines; keys and
 * values are trimmed and a value may be quoted with "".  Keys: model_dirs,
 * default_model, favourites, ctx, threads, backend, temp, top_p, top_k, min_p,
 * fold_reasoning, mouse, and remote (one line per remote model: "remote = NAME URL
 * [KEYFILE]", NAME the server's model name, KEYFILE a file holding its API
 * key; at most CONFIG_REMOTES_MAX lines).  An unknown key or a bad value writes one warning line
 * ("ponder: FILE:LINE: ...") to the warn stream and is skipped; the rest is
 * still used.  A missing file is no error.  A struct config holds what was
 * read (the has_* flags say which numbers were set); no global state. */
#ifndef PONDER_CONFIG_H
#define PONDER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX 4096
#define CONFIG_REMOTES_MAX 8

/* A model served elsewhere (an OpenAI-compatible server). */
struct config_remote {
    char name[256];                     /* the server's model name */
    char url[1024];                     /* http:// or https:// */
    char keyfile[1024];                 /* "~/" expanded; "" when none */
};

struct config {
    char model_dirs[CONFIG_STR_MAX];    /* colon-separated folders, "~/" expanded */
    char default_model[CONFIG_STR_MAX]; /* a path ("~/" expanded) or a model name */
    char favourites[CONFIG_STR_MAX];    /* comma-separated model names */
    bool has_ctx, has_threads, has_backend, has_temp, has_top_p, has_top_k, has_min_p,
        has_fold_reasoning, has_mouse;
    int ctx, threads, top_k;
    int backend;                        /* enum model_backend */
    float temp, top_p, min_p;
    bool fold_reasoning;
    bool mouse;                         /* the chat's mouse wheel */
    struct config_remote remotes[CONFIG_REMOTES_MAX];
    int n_remotes;
};

/* Empties c (nothing set). */
void config_init(struct config *c);
/* The config file's path into buf: 0, or ENOENT when neither
 * XDG_CONFIG_HOME nor HOME is set, ENAMETOOLONG when it does not fit. */
int config_default_path(char *buf, size_t cap);
/* Reads the lines of text (len bytes) into c; name is the file name the
 * warnings show.  Returns the number of warnings written to warn (which may
 * be NULL). */
int config_parse(struct config *c, const char *text, size_t len, const char *name, FILE *warn);
/* Reads the file at path into c: 0 (also when it does not exist), or an errno
 * code with one line in err when it cannot be read.  *n_warnings (may be NULL)
 * gets the number of warnings written. */
int config_load_file(struct config *c, const char *path, FILE *warn, int *n_warnings, char *err,
                     size_t errlen);
/* config_init, then the default file; a file that cannot be read is one more
 * warning.  Returns the number of warnings written. */
int config_load(struct config *c, FILE *warn);
/* Walks a colon-separated list: copies the next non-empty element from *cur
 * into buf and advances *cur; false at the end.  Elements longer than cap-1
 * are skipped. */
bool config_next_dir(const char **cur, char *buf, size_t cap);

#endif
