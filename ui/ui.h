/* The chat interface: an ncursesw screen (transcript, input line edited by
 * readline in callback mode, status line, key hints) driven by one poll()
 * loop over the keyboard and the engine's event fd.  ui_run() owns the
 * terminal until the user quits; it restores it on return and on fatal
 * signals.  Events come from a struct ui_source: the real engine thread
 * (ui_source_engine) or a script of events (ui_script_open, for tests and
 * demos), which the interface cannot tell apart.  The ui never reads argv or
 * the environment: app/ passes everything in struct ui_config. */
#ifndef PONDER_UI_H
#define PONDER_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history/store.h"
#include "infer/engine.h"

struct ui_source {
    void *ctx;
    int (*fd)(void *ctx);
    bool (*next)(void *ctx, struct engine_event *ev);
    uint64_t (*load)(void *ctx, const char *path, const struct model_params *p);
    uint64_t (*generate)(void *ctx, const struct chat_msg *msgs, size_t n,
                         const struct engine_generate_params *gp);
    void (*stop)(void *ctx);
    /* a model served elsewhere (engine_load_remote); NULL: not supported */
    uint64_t (*load_remote)(void *ctx, const struct engine_remote *r);
};

/* Events from the engine thread e (borrowed). */
void ui_source_engine(struct ui_source *src, struct engine *e);

/* Events from a script file (a line each; \n \t \\ \xNN escapes in TEXT):
 *   delay MS       pause before each following event (default 20)
 *   think TEXT     a reasoning token       answer TEXT   an answer token
 *   end            the reply ends (DONE); the next request plays the next reply
 * A load request answers LOADED with the file's base name (a remote load
 * with the remote's model name and backend "remote").  load_ms is measured
 * from the request.  When the script runs out, replies are "(end of script)".
 *   loadms MS      how long the following loads take (default: the delay)  0, or an errno with one line. */
int ui_script_open(const char *path, struct ui_source *src, char *err, size_t errlen);
void ui_script_close(struct ui_source *src);

/* A model the picker lists: a file, or a model served elsewhere. */
struct ui_model {
    const char *path;                   /* the file; for a remote: "remote:URL" (a label) */
    const char *label;                  /* the picker's line; NULL: the file's base name */
    const char *name;                   /* the name its runs are stored under; NULL: unknown */
    uint64_t file_size;                 /* bytes, 0 when unknown */
    const struct engine_remote *remote; /* non-NULL: a remote model */
};

struct ui_config {
    struct ui_source *src;
    struct store *store;                /* may be NULL: nothing is kept */
    const struct ui_model *models;      /* the models the picker lists */
    size_t n_models;
    long first;                         /* the model to load first (index), -1: none */
    const size_t *favourites;           /* indexes into models that Alt-1..9 and
                                           Ctrl-N/Ctrl-P cycle; n_favourites 0: all */
    size_t n_favourites;
    const char *fits_title;             /* the picker's column header, may be NULL */
    struct model_params mp;
    struct engine_generate_params gp;
    const char *system;                 /* the system prompt, may be NULL */
    const char *input_history;          /* readline history file, may be NULL */
    const char *editor;                 /* for Ctrl-X Ctrl-E, may be NULL */
    const char *no_model_hint;          /* shown when there is no model */
    const char *notice;                 /* shown once at start (e.g. "demo model"), may be NULL */
    bool color;                         /* false for NO_COLOR or TERM=dumb */
    bool fold_reasoning;                /* fold traces once the answer starts */
    int64_t resume;                     /* a conversation to continue, 0: a new one */
    bool mouse;                         /* mouse wheel scrolling (when the terminal has it) */
    double disk_mb_s;                   /* the disk read speed a switch estimate assumes
                                           when no load was recorded (0: 500 MB/s) */
};

/* Runs the interface on the terminal until the user quits.  0, or an errno
 * with one line in err (the terminal could not be set up). */
int ui_run(const struct ui_config *c, char *err, size_t errlen);

#endif
