/* The history store: every conversation, which model wrote each reply (its
 * reasoning kept apart from its answer) and the performance of every run, in
 * one SQLite file (WAL, foreign keys, busy timeout, so two running ponders
 * share it).  The schema is versioned with PRAGMA user_version and upgraded by
 * forward migrations; a file from a newer ponder is refused untouched.
 *
 * Every function returns 0 or a POSIX error code (EBADMSG: not a ponder
 * database or corrupt; ENOTSUP: written by a newer ponder; EACCES/EROFS: not
 * writable; EBUSY: locked past the busy timeout; ENOENT: no such id or file;
 * EINVAL: a bad argument; ENOMEM; EIO: anything else SQLite reports) and
 * writes one line into err.  A struct store is one connection: use it from
 * one thread at a time.  Times are Unix milliseconds (UTC).
 *
 * Streaming replies never lose text.  store_reply_begin() creates the
 * assistant message with status STREAMING; each store_reply_append() is one
 * small transaction that INSERTs a row into a chunks table; store_reply_finish()
 * folds the chunks into the message and records its run in one transaction.
 * Why chunks and not `UPDATE messages SET answer = answer || ?`: SQLite
 * rewrites the whole row (and its overflow pages) on every UPDATE, so the cost
 * of each append grows with the reply, and the FTS5 index would re-index the
 * whole text per token.  Measured on the development machine (5-byte appends,
 * one commit each, WAL, synchronous=NORMAL): after 8000 appends `||` cost
 * 590 us per append and wrote 345 MB of WAL; chunk INSERTs cost 98 us and wrote
 * 66 MB, flat in the length of the reply.  A reply left STREAMING by a process
 * that died (crash, kill -9, power loss) is recovered by store_open() with all
 * the text committed before it died, and marked INTERRUPTED; replies of a
 * process still running (another ponder) are left alone. */
#ifndef PONDER_STORE_H
#define PONDER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

/* The schema version this ponder writes.  A new column (the thinking budget
 * of a run, say) is a new entry at the end of store_migrations[] in store.c
 * and one more here; struct store_run grows at its end. */
#define STORE_SCHEMA_VERSION 4

enum store_flags {
    STORE_CREATE = 1,       /* create the file (mode 0600) when missing */
    STORE_READONLY = 2,     /* never write: no migration, no recovery */
    STORE_NO_RECOVER = 4,   /* leave STREAMING replies of dead writers alone */
};

/* The default path: xdg_data_home/ponder/ponder.db, or
 * home/.local/share/ponder/ponder.db when xdg_data_home is NULL or "" (the
 * caller reads the environment).  ENOENT when both are unset. */
int store_default_path(const char *xdg_data_home, const char *home, char *buf, size_t cap,
                       char *err, size_t errlen);
/* Opens (and creates, migrates, recovers) the store at path; ":memory:" is a
 * private in-memory store.  STORE_CREATE also creates missing parent folders
 * (mode 0700).  *out is NULL on failure. */
int store_open(const char *path, unsigned flags, struct store **out, char *err, size_t errlen);
/* Closes it; store_close(NULL) is a no-op. */
void store_close(struct store *s);
/* Replaces the clock (tests); NULL restores the real one. */
void store_set_clock(struct store *s, int64_t (*now_ms)(void *ctx), void *ctx);
/* Marks every STREAMING reply whose writer is dead INTERRUPTED, keeping its
 * text; store_open() calls it.  *n_recovered (may be NULL) gets the count. */
int store_recover(struct store *s, int *n_recovered, char *err, size_t errlen);

/* ---- models ---- */

#define STORE_FINGERPRINT_SIZE 33  /* 32 hex digits and a NUL */

struct store_model {
    int64_t id;
    const char *path;
    const char *name;           /* display name */
    const char *arch;           /* "qwen2", "llama", "deepseek2" */
    int64_t n_params;
    const char *weight_type;    /* "Q4_K_M", ... */
    int64_t file_size;
    const char *fingerprint;    /* store_model_fingerprint() */
    int64_t first_used, last_used;
};

/* A content fingerprint of a model file without reading all of it: a hash of
 * its size, its first 1 MiB (the GGUF header and metadata) and its last 64 KiB. */
int store_model_fingerprint(const char *path, char out[STORE_FINGERPRINT_SIZE], char *err,
                            size_t errlen);
/* Records that m is in use: finds it by fingerprint (updating path, name and
 * the rest) or inserts it; sets last_used (and first_used when new). */
int store_model_use(struct store *s, const struct store_model *m, int64_t *id, char *err,
                    size_t errlen);

/* How long a model took to load (the interface's switch estimate): one
 * record per path, the latest load.  path is the file, or the label of a
 * remote model; fingerprint (store_model_fingerprint(), may be NULL or "")
 * finds the record again when the file is moved or linked.  _get looks by
 * fingerprint first, then by path (either may be NULL); ENOENT when none is
 * recorded.  EINVAL for no path or ms outside [0, 1e9). */
int store_model_load_set(struct store *s, const char *path, const char *fingerprint, double ms,
                         char *err, size_t errlen);
int store_model_load_get(struct store *s, const char *path, const char *fingerprint, double *ms,
                         char *err, size_t errlen);

/* Calls fn for the models used most recently first, at most limit (0: all);
 * callback rules as store_conv_list(). */
int store_model_list(struct store *s, int limit,
                     int (*fn)(void *ctx, const struct store_model *m), void *ctx, char *err,
                     size_t errlen);

/* ---- conversations ---- */

/* title NULL or "": the conversation takes its title from its first user
 * message (first line, at most 60 characters), never from reasoning. */
int store_conv_create(struct store *s, const char *title, int64_t *id, char *err, size_t errlen);
int store_conv_rename(struct store *s, int64_t id, const char *title, char *err, size_t errlen);
int store_conv_pin(struct store *s, int64_t id, bool pinned, char *err, size_t errlen);
/* Deletes with undo: the conversation disappears from lists, loads and
 * searches until store_conv_undelete(); store_conv_purge() removes every
 * deleted conversation for good (id 0) or one of them. */
int store_conv_delete(struct store *s, int64_t id, char *err, size_t errlen);
int store_conv_undelete(struct store *s, int64_t id, char *err, size_t errlen);
int store_conv_purge(struct store *s, int64_t id, char *err, size_t errlen);

struct store_conv_info {
    int64_t id;
    const char *title;          /* "" when it has none yet */
    int64_t created, updated;
    bool pinned;
    int n_messages;
    const char *models;         /* the models that replied, ", "-separated */
    double median_gen_tps;      /* 0 when it has no runs */
};
/* Calls fn for each conversation, pinned first, then newest (updated) first,
 * at most limit (0: all).  The pointers live until fn returns; fn returning
 * non-zero stops the walk and that value is returned. */
int store_conv_list(struct store *s, int limit,
                    int (*fn)(void *ctx, const struct store_conv_info *c), void *ctx, char *err,
                    size_t errlen);

/* ---- messages and runs ---- */

enum store_role { STORE_ROLE_SYSTEM, STORE_ROLE_USER, STORE_ROLE_ASSISTANT };
enum store_status {
    STORE_STATUS_STREAMING,
    STORE_STATUS_COMPLETE,
    STORE_STATUS_INTERRUPTED,
    STORE_STATUS_ERROR,
};
enum store_part { STORE_PART_ANSWER, STORE_PART_REASONING };

const char *store_role_name(enum store_role r);
const char *store_status_name(enum store_status st);

/* One generation's numbers, as the engine reports them (DESIGN.md 3.2). */
struct store_run {
    int64_t id, message_id, model_id;   /* message_id, model_id: 0 = none */
    const char *backend, *device, *driver;
    int n_ctx, n_threads, n_gpu_layers;
    int64_t prompt_tokens, reasoning_tokens, answer_tokens;
    double load_ms, prompt_ms, ttft_ms, reasoning_ms, answer_ms;
    double prompt_tps, gen_tps;
    const char *stop_reason;            /* "eos", "length", "stop", ... */
    double temp, top_p, min_p, repeat_penalty;
    int top_k;
    uint64_t seed;
    int64_t created;
    /* the thinking budget (schema 3): think_budget reasoning tokens (0:
     * none), think_mode "soft" or "hard" (NULL or "": none), think_off (the
     * reply started with an empty reasoning block), budget_reached (the
     * budget ended the reasoning) */
    int think_budget;
    const char *think_mode;
    bool think_off;
    bool budget_reached;
};

/* A whole message in one transaction (the user's message before generation
 * starts, a system prompt, an imported reply); reasoning may be NULL. */
int store_message_add(struct store *s, int64_t conv, enum store_role role, const char *answer,
                      const char *reasoning, int64_t model_id, int64_t *id, char *err,
                      size_t errlen);
/* The assistant's reply, STREAMING from its first token. */
int store_reply_begin(struct store *s, int64_t conv, int64_t model_id, int64_t *id, char *err,
                      size_t errlen);
/* Appends len bytes to the answer or the reasoning; committed on return. */
int store_reply_append(struct store *s, int64_t msg, enum store_part part, const char *text,
                       size_t len, char *err, size_t errlen);
/* Ends the reply (COMPLETE, INTERRUPTED or ERROR with error_text) and, when
 * run is not NULL, records its run, in one transaction. */
int store_reply_finish(struct store *s, int64_t msg, enum store_status status,
                       const char *error_text, const struct store_run *run, char *err,
                       size_t errlen);
/* Records a run on its own (run->message_id may be 0). */
int store_run_add(struct store *s, const struct store_run *run, int64_t *id, char *err,
                  size_t errlen);

struct store_message {
    int64_t id;
    int seq;                    /* 0, 1, 2, ... in the conversation */
    enum store_role role;
    char *answer, *reasoning;   /* NUL-terminated; "" when empty */
    int64_t model_id;           /* 0: none */
    char *model_name;           /* "" when none */
    enum store_status status;
    char *error;                /* "" unless status is ERROR */
    int64_t created;
    bool has_run;
    struct store_run run;       /* its strings point into the conversation */
};

struct store_conv {
    int64_t id;
    char *title;
    int64_t created, updated;
    bool pinned;
    size_t n;
    struct store_message *msgs;
};

/* Loads a conversation with all its messages (a STREAMING reply with the
 * text committed so far).  Free with store_conv_free(); ENOENT when there is
 * no such (undeleted) conversation. */
int store_conv_load(struct store *s, int64_t id, struct store_conv **out, char *err,
                    size_t errlen);
void store_conv_free(struct store_conv *c);

/* ---- search ---- */

enum store_search_in { STORE_SEARCH_ALL, STORE_SEARCH_ANSWERS, STORE_SEARCH_REASONING };

#define STORE_MARK_ON "\x02"    /* snippets wrap each match in these */
#define STORE_MARK_OFF "\x03"

struct store_hit {
    int64_t conv_id, message_id;
    const char *title;
    enum store_role role;
    bool in_reasoning;          /* the snippet comes from the reasoning */
    const char *snippet;
};
/* Full-text search of finished messages: every word of text must occur
 * (words are taken literally: no FTS5 syntax), best matches first, at most
 * limit (0: 100).  Callback rules as store_conv_list(). */
int store_search(struct store *s, const char *text, enum store_search_in in, int limit,
                 int (*fn)(void *ctx, const struct store_hit *h), void *ctx, char *err,
                 size_t errlen);

/* ---- statistics ---- */

struct store_stats {
    const char *model, *backend, *device;
    int64_t n_runs;
    double prompt_tps_median, prompt_tps_p95;
    double gen_tps_median, gen_tps_p95;
    double ttft_ms_median, ttft_ms_p95;
};
/* One row per model, backend and device (model names in order); model, when
 * not NULL, keeps the models whose name contains it.  Percentiles
 * interpolate linearly between ranks.  Callback rules as store_conv_list(). */
int store_stats(struct store *s, const char *model,
                int (*fn)(void *ctx, const struct store_stats *st), void *ctx, char *err,
                size_t errlen);

/* The speed measured here for one model file, by its fingerprint: the
 * statistics above group runs by model name, and every quantization of a
 * model shares its name; the file does not.  Medians over its latest recent
 * runs (<= 0: STORE_SPEED_RECENT; at most STORE_SPEED_RECENT_MAX) on backend
 * (NULL: any) with n_gpu_layers layers on the device (< 0: any) that
 * generated at least STORE_SPEED_MIN_TOKENS tokens (the rate of a shorter
 * run is mostly its first tokens' overhead).  n_runs 0 when there are none;
 * EINVAL for no fingerprint. */
#define STORE_SPEED_RECENT 16
#define STORE_SPEED_RECENT_MAX 256
#define STORE_SPEED_MIN_TOKENS 16
struct store_speed {
    int n_runs;                 /* the runs the medians are over */
    double gen_tps_median;
    double prompt_tps_median;   /* over those of them that say (0: none) */
    int n_gpu_layers, n_threads;    /* of the latest of them */
};
int store_model_speed(struct store *s, const char *fingerprint, const char *backend,
                      int n_gpu_layers, int recent, struct store_speed *out, char *err,
                      size_t errlen);

/* ---- export ---- */

enum store_export_format { STORE_EXPORT_MARKDOWN, STORE_EXPORT_JSON };
enum store_export_flags { STORE_EXPORT_REASONING = 1 };

/* Writes a conversation to f: Markdown (reasoning, when asked, in a
 * collapsible <details> block) or JSON (reasoning as "" when not asked). */
int store_export(struct store *s, int64_t conv, enum store_export_format fmt, unsigned flags,
                 FILE *f, char *err, size_t errlen);

/* ---- settings ---- */

/* *value is malloc'd (caller frees), NULL when the key is not set. */
int store_setting_get(struct store *s, const char *key, char **value, char *err, size_t errlen);
int store_setting_set(struct store *s, const char *key, const char *value, char *err,
                      size_t errlen);

#endif
