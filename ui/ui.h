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
};

/* Events from the engine thread e (borrowed). */
void ui_source_engine(struct ui_source *src, struct engine *e);

/* Events from a script file (a line each; \n \t \\ \xNN escapes in TEXT):
 *   delay MS       pause before each following event (default 20)
 *   think TEXT     a reasoning token       answer TEXT   an answer token
 *   end            the reply ends (DONE); the next request plays the next reply
 * A load request answers LOADED with the file's base name.  When the script
 * runs out, replies are "(end of script)".  0, or an errno with one line. */
int ui_script_open(const char *path, struct ui_source *src, char *err, size_t errlen);
void ui_script_close(struct ui_source *src);

struct ui_config {
    struct ui_source *src;
    struct store *store;                /* may be NULL: nothing is kept */
    const char *model;                  /* the model file to load first; NULL: none */
    const char *const *models;          /* the models the picker lists */
    const char *const *model_labels;    /* a line for each (NULL or NULL entries: the name) */
    size_t n_models;
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
};

/* Runs the interface on the terminal until the user quits.  0, or an errno
 * with one line in err (the terminal could not be set up). */
int ui_run(const struct ui_config *c, char *err, size_t errlen);

#endif
