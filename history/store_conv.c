/* The history store's conversations and messages: create, rename, pin,
 * delete with undo, list, load; messages added whole or streamed as a reply,
 * and the run each reply records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "history/store_int.h"

static const char *const role_names[] = {"system", "user", "assistant"};
static const char *const status_names[] = {"streaming", "complete", "interrupted", "error"};

const char *store_role_name(enum store_role r)
{
    return (unsigned)r < 3 ? role_names[r] : "?";
}

const char *store_status_name(enum store_status st)
{
    return (unsigned)st < 4 ? status_names[st] : "?";
}

static enum store_role role_of(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, role_names[i]))
            return (enum store_role)i;
    return STORE_ROLE_USER;
}

static enum store_status status_of(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, status_names[i]))
            return (enum store_status)i;
    return STORE_STATUS_ERROR;
}

static void bind_id(sqlite3_stmt *st, int col, int64_t id)
{
    if (id > 0)
        sqlite3_bind_int64(st, col, id);
    else
        sqlite3_bind_null(st, col);
}

/* Runs a one-statement write; ENOENT when it changed no row. */
static int write_one(struct store *s, const char *sql, int64_t id, const char *text, int64_t num,
                     const char *what, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s, sql, &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (text)
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, num);
    sqlite3_bind_int64(st, 3, store_now(s));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, what);
    else if (sqlite3_changes(s->db) == 0)
        rc = store_fail(err, errlen, ENOENT, "no conversation %lld", (long long)id);
    sqlite3_finalize(st);
    return rc;
}

int store_conv_create(struct store *s, const char *title, int64_t *id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s, "INSERT INTO conversations(title, created, updated) VALUES (?1, ?2, ?2)",
                           &st, err, errlen);
    if (rc)
        return rc;
    if (title && *title)
        sqlite3_bind_text(st, 1, title, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, store_now(s));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "creating a conversation");
    else if (id)
        *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_conv_rename(struct store *s, int64_t id, const char *title, char *err, size_t errlen)
{
    if (!title || !*title)
        return store_fail(err, errlen, EINVAL, "a title cannot be empty");
    return write_one(s, "UPDATE conversations SET title = ?2, updated = ?3"
                        " WHERE id = ?1 AND deleted IS NULL",
                     id, title, 0, "renaming a conversation", err, errlen);
}

int store_conv_pin(struct store *s, int64_t id, bool pinned, char *err, size_t errlen)
{
    return write_one(s, "UPDATE conversations SET pinned = ?2 WHERE id = ?1 AND deleted IS NULL"
                        " AND ?3 IS NOT NULL",
                     id, NULL, pinned, "pinning a conversation", err, errlen);
}

int store_conv_delete(struct store *s, int64_t id, char *err, size_t errlen)
{
    return write_one(s, "UPDATE conversations SET deleted = ?3 WHERE id = ?1 AND deleted IS NULL"
                        " AND ?2 IS NOT NULL",
                     id, NULL, 0, "deleting a conversation", err, errlen);
}

int store_conv_undelete(struct store *s, int64_t id, char *err, size_t errlen)
{
    return write_one(s, "UPDATE conversations SET deleted = NULL"
                        " WHERE id = ?1 AND deleted IS NOT NULL AND ?2 IS NOT NULL"
                        " AND ?3 IS NOT NULL",
                     id, NULL, 0, "restoring a conversation", err, errlen);
}

int store_conv_purge(struct store *s, int64_t id, char *err, size_t errlen)
{
    if (id > 0)
        return write_one(s, "DELETE FROM conversations WHERE id = ?1 AND deleted IS NOT NULL"
                            " AND ?2 IS NOT NULL AND ?3 IS NOT NULL",
                         id, NULL, 0, "removing a conversation", err, errlen);
    return store_exec(s, "DELETE FROM conversations WHERE deleted IS NOT NULL", err, errlen);
}

/* The first line of text, at most 60 characters (whole UTF-8 sequences),
 * without surrounding blanks. */
static size_t title_from(const char *text, const char **start)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    *start = text;
    size_t n = 0, chars = 0;
    while (text[n] && text[n] != '\n' && text[n] != '\r' && chars < 60) {
        n++;
        while ((text[n] & 0xC0) == 0x80)
            n++;
        chars++;
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    return n;
}

/* Inside a transaction: the next seq of conv, and the conversation's touch. */
static int next_seq(struct store *s, int64_t conv, int *seq, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT (SELECT count(*) FROM conversations WHERE id = ?1"
                           "        AND deleted IS NULL),"
                           " coalesce((SELECT max(seq) + 1 FROM messages"
                           "           WHERE conversation_id = ?1), 0)",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, conv);
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = store_db_fail(s, err, errlen, "adding a message");
    else if (sqlite3_column_int(st, 0) == 0)
        rc = store_fail(err, errlen, ENOENT, "no conversation %lld", (long long)conv);
    else
        *seq = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    return rc;
}

static int touch(struct store *s, int64_t conv, const char *title, size_t title_len, char *err,
                 size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s,
                           "UPDATE conversations SET updated = ?2,"
                           " title = CASE WHEN title IS NULL AND ?3 <> '' THEN ?3 ELSE title END"
                           " WHERE id = ?1",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, conv);
    sqlite3_bind_int64(st, 2, store_now(s));
    sqlite3_bind_text(st, 3, title ? title : "", title ? (int)title_len : 0, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "updating a conversation");
    sqlite3_finalize(st);
    return rc;
}

static int insert_message(struct store *s, int64_t conv, enum store_role role, const char *answer,
                          const char *reasoning, int64_t model_id, enum store_status status,
                          int64_t *id, char *err, size_t errlen)
{
    if ((unsigned)role > STORE_ROLE_ASSISTANT)
        return store_fail(err, errlen, EINVAL, "no such role %d", (int)role);
    sqlite3_stmt *st = NULL;
    int seq = 0, rc;
    if ((rc = store_begin(s, err, errlen)))
        return rc;
    if ((rc = next_seq(s, conv, &seq, err, errlen)))
        goto out;
    if ((rc = store_prepare(s,
                            "INSERT INTO messages(conversation_id, seq, role, answer, reasoning,"
                            " model_id, status, writer, created)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            &st, err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, conv);
    sqlite3_bind_int(st, 2, seq);
    sqlite3_bind_text(st, 3, store_role_name(role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, answer ? answer : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, reasoning ? reasoning : "", -1, SQLITE_STATIC);
    bind_id(st, 6, model_id);
    sqlite3_bind_text(st, 7, store_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, status == STORE_STATUS_STREAMING ? s->writer : "", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, store_now(s));
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "adding a message");
        goto out;
    }
    int64_t msg = sqlite3_last_insert_rowid(s->db);
    const char *t = NULL;
    size_t tn = 0;
    if (role == STORE_ROLE_USER && answer)
        tn = title_from(answer, &t);
    if ((rc = touch(s, conv, t, tn, err, errlen)))
        goto out;
    if (model_id > 0) {
        sqlite3_finalize(st);
        st = NULL;
        if ((rc = store_prepare(s, "UPDATE models SET last_used = ?2 WHERE id = ?1", &st, err,
                                errlen)))
            goto out;
        sqlite3_bind_int64(st, 1, model_id);
        sqlite3_bind_int64(st, 2, store_now(s));
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = store_db_fail(s, err, errlen, "adding a message");
            goto out;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = store_commit(s, err, errlen)))
        goto out;
    if (id)
        *id = msg;
out:
    sqlite3_finalize(st);
    if (rc)
        store_rollback(s);
    return rc;
}

int store_message_add(struct store *s, int64_t conv, enum store_role role, const char *answer,
                      const char *reasoning, int64_t model_id, int64_t *id, char *err,
                      size_t errlen)
{
    return insert_message(s, conv, role, answer, reasoning, model_id, STORE_STATUS_COMPLETE, id,
                          err, errlen);
}

int store_reply_begin(struct store *s, int64_t conv, int64_t model_id, int64_t *id, char *err,
                      size_t errlen)
{
    return insert_message(s, conv, STORE_ROLE_ASSISTANT, NULL, NULL, model_id,
                          STORE_STATUS_STREAMING, id, err, errlen);
}

int store_reply_append(struct store *s, int64_t msg, enum store_part part, const char *text,
                       size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return 0;
    if (len > INT32_MAX)
        return store_fail(err, errlen, EFBIG, "a piece of %zu bytes is too long", len);
    int rc;
    if (!s->append &&
        (rc = store_prepare(s, "INSERT INTO chunks(message_id, part, text) VALUES (?, ?, ?)",
                            &s->append, err, errlen)))
        return rc;
    sqlite3_bind_int64(s->append, 1, msg);
    sqlite3_bind_int(s->append, 2, part == STORE_PART_REASONING);
    sqlite3_bind_text(s->append, 3, text, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(s->append) == SQLITE_DONE ? 0 : store_db_fail(s, err, errlen, "saving a reply");
    sqlite3_reset(s->append);
    sqlite3_clear_bindings(s->append);
    return rc;
}

static int insert_run(struct store *s, const struct store_run *r, int64_t msg, int64_t *id,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(
        s,
        "INSERT INTO runs(message_id, model_id, backend, device, driver, n_ctx, n_threads,"
        " n_gpu_layers, prompt_tokens, reasoning_tokens, answer_tokens, load_ms, prompt_ms,"
        " ttft_ms, reasoning_ms, answer_ms, prompt_tps, gen_tps, stop_reason, temp, top_k, top_p,"
        " min_p, repeat_penalty, seed, created, think_budget, think_mode, think_off,"
        " budget_reached)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
        " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)",
        &st, err, errlen);
    if (rc)
        return rc;
    bind_id(st, 1, msg);
    bind_id(st, 2, r->model_id);
    sqlite3_bind_text(st, 3, r->backend ? r->backend : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->device ? r->device : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->driver ? r->driver : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, r->n_ctx);
    sqlite3_bind_int(st, 7, r->n_threads);
    sqlite3_bind_int(st, 8, r->n_gpu_layers);
    sqlite3_bind_int64(st, 9, r->prompt_tokens);
    sqlite3_bind_int64(st, 10, r->reasoning_tokens);
    sqlite3_bind_int64(st, 11, r->answer_tokens);
    const double d[] = {r->load_ms, r->prompt_ms, r->ttft_ms, r->reasoning_ms,
                        r->answer_ms, r->prompt_tps, r->gen_tps};
    for (int i = 0; i < 7; i++)
        sqlite3_bind_double(st, 12 + i, d[i]);   /* NaN binds as NULL */
    sqlite3_bind_text(st, 19, r->stop_reason ? r->stop_reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 20, r->temp);
    sqlite3_bind_int(st, 21, r->top_k);
    sqlite3_bind_double(st, 22, r->top_p);
    sqlite3_bind_double(st, 23, r->min_p);
    sqlite3_bind_double(st, 24, r->repeat_penalty);
    int64_t seed;
    memcpy(&seed, &r->seed, sizeof seed);
    sqlite3_bind_int64(st, 25, seed);
    sqlite3_bind_int64(st, 26, r->created ? r->created : store_now(s));
    sqlite3_bind_int(st, 27, r->think_budget > 0 ? r->think_budget : 0);
    sqlite3_bind_text(st, 28, r->think_mode ? r->think_mode : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 29, r->think_off);
    sqlite3_bind_int(st, 30, r->budget_reached);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "recording a run");
    else if (id)
        *id = sqlite3_last_insert_rowid(s->db);
    sqlite3_finalize(st);
    return rc;
}

int store_run_add(struct store *s, const struct store_run *run, int64_t *id, char *err,
                  size_t errlen)
{
    return insert_run(s, run, run->message_id, id, err, errlen);
}

int store_reply_finish(struct store *s, int64_t msg, enum store_status status,
                       const char *error_text, const struct store_run *run, char *err,
                       size_t errlen)
{
    if (status == STORE_STATUS_STREAMING || (unsigned)status > STORE_STATUS_ERROR)
        return store_fail(err, errlen, EINVAL, "a reply ends complete, interrupted or in error");
    sqlite3_stmt *st = NULL;
    int rc = store_begin(s, err, errlen);
    if (rc)
        return rc;
    if ((rc = store_prepare(s, "SELECT conversation_id, status FROM messages WHERE id = ?", &st,
                            err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, msg);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = store_fail(err, errlen, ENOENT, "no message %lld", (long long)msg);
        goto out;
    }
    int64_t conv = sqlite3_column_int64(st, 0);
    if (strcmp(store_col_text(st, 1), "streaming")) {
        rc = store_fail(err, errlen, EINVAL, "message %lld is not streaming (it is %s)",
                        (long long)msg, store_col_text(st, 1));
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = store_fold_reply(s, msg, status, status == STORE_STATUS_ERROR ? error_text : NULL,
                               err, errlen)))
        goto out;
    if (run && (rc = insert_run(s, run, msg, NULL, err, errlen)))
        goto out;
    if ((rc = touch(s, conv, NULL, 0, err, errlen)))
        goto out;
    rc = store_commit(s, err, errlen);
out:
    sqlite3_finalize(st);
    if (rc)
        store_rollback(s);
    return rc;
}

/* ---- listing and loading ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median generation speed of a conversation's runs. */
static int median_tps(struct store *s, sqlite3_stmt *st, int64_t conv, double *out, char *err,
                      size_t errlen)
{
    double *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0, step;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, conv);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            double *p = realloc(v, ncap * sizeof *p);
            if (!p) {
                rc = store_fail(err, errlen, ENOMEM, "out of memory");
                goto out;
            }
            v = p;
            cap = ncap;
        }
        v[n++] = sqlite3_column_double(st, 0);
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "listing conversations");
        goto out;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_double);
    *out = store_percentile(v, n, 0.5);
out:
    free(v);
    return rc;
}

int store_conv_list(struct store *s, int limit,
                    int (*fn)(void *ctx, const struct store_conv_info *c), void *ctx, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL, *tps = NULL;
    int rc = store_prepare(
        s,
        "SELECT c.id, coalesce(c.title, ''), c.created, c.updated, c.pinned,"
        " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),"
        " coalesce((SELECT group_concat(name, ', ') FROM"
        "  (SELECT DISTINCT mo.name AS name FROM messages m JOIN models mo ON mo.id = m.model_id"
        "   WHERE m.conversation_id = c.id ORDER BY mo.name)), '')"
        " FROM conversations c WHERE c.deleted IS NULL"
        " ORDER BY c.pinned DESC, c.updated DESC, c.id DESC LIMIT ?",
        &st, err, errlen);
    if (rc)
        return rc;
    if ((rc = store_prepare(s,
                            "SELECT r.gen_tps FROM runs r JOIN messages m ON m.id = r.message_id"
                            " WHERE m.conversation_id = ? AND r.gen_tps > 0",
                            &tps, err, errlen)))
        goto out;
    sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_conv_info c = {
            .id = sqlite3_column_int64(st, 0),
            .title = store_col_text(st, 1),
            .created = sqlite3_column_int64(st, 2),
            .updated = sqlite3_column_int64(st, 3),
            .pinned = sqlite3_column_int(st, 4) != 0,
            .n_messages = sqlite3_column_int(st, 5),
            .models = store_col_text(st, 6),
        };
        if ((rc = median_tps(s, tps, c.id, &c.median_gen_tps, err, errlen)))
            goto out;
        if ((rc = fn(ctx, &c)))
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "listing conversations");
out:
    sqlite3_finalize(st);
    sqlite3_finalize(tps);
    return rc;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    const char *t = store_col_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, t, n);
        p[n] = 0;
    }
    return p;
}

void store_conv_free(struct store_conv *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        struct store_message *m = &c->msgs[i];
        free(m->answer);
        free(m->reasoning);
        free(m->model_name);
        free(m->error);
        /* the run's strings were allocated by store_conv_load() */
        free((char *)m->run.backend);
        free((char *)m->run.device);
        free((char *)m->run.driver);
        free((char *)m->run.stop_reason);
        free((char *)m->run.think_mode);
    }
    free(c->msgs);
    free(c->title);
    free(c);
}

static int load_run(struct store *s, sqlite3_stmt *st, struct store_message *m, char *err,
                    size_t errlen)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, m->id);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        return 0;
    if (step != SQLITE_ROW)
        return store_db_fail(s, err, errlen, "loading a run");
    struct store_run *r = &m->run;
    m->has_run = true;
    r->id = sqlite3_column_int64(st, 0);
    r->message_id = m->id;
    r->model_id = sqlite3_column_int64(st, 1);
    r->backend = dup_col(st, 2);
    r->device = dup_col(st, 3);
    r->driver = dup_col(st, 4);
    r->stop_reason = dup_col(st, 5);
    if (!r->backend || !r->device || !r->driver || !r->stop_reason)
        return store_fail(err, errlen, ENOMEM, "out of memory");
    r->n_ctx = sqlite3_column_int(st, 6);
    r->n_threads = sqlite3_column_int(st, 7);
    r->n_gpu_layers = sqlite3_column_int(st, 8);
    r->prompt_tokens = sqlite3_column_int64(st, 9);
    r->reasoning_tokens = sqlite3_column_int64(st, 10);
    r->answer_tokens = sqlite3_column_int64(st, 11);
    r->load_ms = sqlite3_column_double(st, 12);
    r->prompt_ms = sqlite3_column_double(st, 13);
    r->ttft_ms = sqlite3_column_double(st, 14);
    r->reasoning_ms = sqlite3_column_double(st, 15);
    r->answer_ms = sqlite3_column_double(st, 16);
    r->prompt_tps = sqlite3_column_double(st, 17);
    r->gen_tps = sqlite3_column_double(st, 18);
    r->temp = sqlite3_column_double(st, 19);
    r->top_k = sqlite3_column_int(st, 20);
    r->top_p = sqlite3_column_double(st, 21);
    r->min_p = sqlite3_column_double(st, 22);
    r->repeat_penalty = sqlite3_column_double(st, 23);
    int64_t seed = sqlite3_column_int64(st, 24);
    memcpy(&r->seed, &seed, sizeof seed);
    r->created = sqlite3_column_int64(st, 25);
    r->think_budget = sqlite3_column_int(st, 26);
    r->think_mode = dup_col(st, 27);
    if (!r->think_mode)
        return store_fail(err, errlen, ENOMEM, "out of memory");
    r->think_off = sqlite3_column_int(st, 28) != 0;
    r->budget_reached = sqlite3_column_int(st, 29) != 0;
    return 0;
}

int store_conv_load(struct store *s, int64_t id, struct store_conv **out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL, *runs = NULL;
    struct store_conv *c = calloc(1, sizeof *c);
    int rc = 0, step;
    *out = NULL;
    if (!c)
        return store_fail(err, errlen, ENOMEM, "out of memory");
    /* one read transaction: a consistent picture while another ponder writes */
    if ((rc = store_exec(s, "BEGIN", err, errlen)))
        goto out;
    if ((rc = store_prepare(s,
                            "SELECT coalesce(title, ''), created, updated, pinned FROM conversations"
                            " WHERE id = ? AND deleted IS NULL",
                            &st, err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, id);
    if ((step = sqlite3_step(st)) != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? store_fail(err, errlen, ENOENT, "no conversation %lld",
                                              (long long)id)
                                 : store_db_fail(s, err, errlen, "loading a conversation");
        goto out;
    }
    c->id = id;
    c->title = dup_col(st, 0);
    c->created = sqlite3_column_int64(st, 1);
    c->updated = sqlite3_column_int64(st, 2);
    c->pinned = sqlite3_column_int(st, 3) != 0;
    if (!c->title) {
        rc = store_fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = store_prepare(
             s,
             "SELECT id, model_id, backend, device, driver, stop_reason, n_ctx, n_threads,"
             " n_gpu_layers, prompt_tokens, reasoning_tokens, answer_tokens, load_ms, prompt_ms,"
             " ttft_ms, reasoning_ms, answer_ms, prompt_tps, gen_tps, temp, top_k, top_p, min_p,"
             " repeat_penalty, seed, created, think_budget, think_mode, think_off,"
             " budget_reached FROM runs WHERE message_id = ?"
             " ORDER BY id DESC LIMIT 1",
             &runs, err, errlen)))
        goto out;
    if ((rc = store_prepare(s,
                            "SELECT m.id, m.seq, m.role, m.answer, m.reasoning,"
                            " coalesce(m.model_id, 0), coalesce(mo.name, ''), m.status, m.error,"
                            " m.created FROM messages m LEFT JOIN models mo ON mo.id = m.model_id"
                            " WHERE m.conversation_id = ? ORDER BY m.seq",
                            &st, err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, id);
    size_t cap = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct store_message *p = realloc(c->msgs, ncap * sizeof *p);
            if (!p) {
                rc = store_fail(err, errlen, ENOMEM, "out of memory");
                goto out;
            }
            c->msgs = p;
            cap = ncap;
        }
        struct store_message *m = &c->msgs[c->n++];
        memset(m, 0, sizeof *m);
        m->id = sqlite3_column_int64(st, 0);
        m->seq = sqlite3_column_int(st, 1);
        m->role = role_of(store_col_text(st, 2));
        m->model_id = sqlite3_column_int64(st, 5);
        m->status = status_of(store_col_text(st, 7));
        m->created = sqlite3_column_int64(st, 9);
        m->model_name = dup_col(st, 6);
        m->error = dup_col(st, 8);
        if (m->status == STORE_STATUS_STREAMING) {
            struct store_buf a = {0}, r = {0};
            if (store_buf_str(&a, store_col_text(st, 3)) || store_buf_str(&r, store_col_text(st, 4)) ||
                (rc = store_read_chunks(s, m->id, &a, &r, err, errlen))) {
                store_buf_free(&a);
                store_buf_free(&r);
                rc = rc ? rc : store_fail(err, errlen, ENOMEM, "out of memory");
                goto out;
            }
            m->answer = a.p ? a.p : strdup("");
            m->reasoning = r.p ? r.p : strdup("");
        } else {
            m->answer = dup_col(st, 3);
            m->reasoning = dup_col(st, 4);
        }
        if (!m->answer || !m->reasoning || !m->model_name || !m->error) {
            rc = store_fail(err, errlen, ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = load_run(s, runs, m, err, errlen)))
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "loading a conversation");
out:
    sqlite3_finalize(st);
    sqlite3_finalize(runs);
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc)
        store_conv_free(c);
    else
        *out = c;
    return rc;
}
