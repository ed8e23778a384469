/* The cost of a model switch, said before it happens (issue #9, item 4): the
 * time to load the model and to read the conversation again with it.  Load
 * time comes from the last load of that model recorded in the store
 * (store_model_load_get(), by path), else from its file size over a disk read
 * speed; the re-read time from the conversation's tokens at the model's
 * median prompt speed recorded in the store, else SWITCH_PROMPT_TPS.  A
 * remote model loads with one request (SWITCH_REMOTE_LOAD_MS).  The store
 * may be NULL; store errors only make the estimate a default. */
#ifndef PONDER_UI_SWITCH_H
#define PONDER_UI_SWITCH_H

#include <stdbool.h>
#include <stddef.h>

#include "history/store.h"
#include "ui/ui.h"

#define SWITCH_DISK_MB_S 500.0      /* when none is given */
#define SWITCH_PROMPT_TPS 100.0     /* prompt tokens/s when none is recorded */
#define SWITCH_REMOTE_LOAD_MS 200.0

struct switch_cost {
    double load_ms;
    bool load_recorded;             /* from a recorded load, not the file size */
    int tokens;                     /* to read again */
    double reread_ms;
    bool speed_recorded;            /* the model's recorded prompt speed */
};

/* The estimate for switching to m with a conversation of tokens tokens. */
void switch_estimate(struct store *store, const struct ui_model *m, int tokens,
                     double disk_mb_s, struct switch_cost *out);
/* "switch: load ≈ 3 s, re-read 2,310 tokens ≈ 11 s" (no re-read part when
 * tokens is 0); returns buf. */
const char *switch_text(const struct switch_cost *c, char *buf, size_t cap);
/* Records that m took ms to load (the next estimate uses it). */
void switch_record_load(struct store *store, const struct ui_model *m, double ms);
/* Seconds for the switch lines: "0.4 s" below 10 s, else "11 s". */
const char *switch_secs(double ms, char *buf, size_t cap);

#endif
