/* The history store's questions: full-text search over answers and
 * reasoning (FTS5), and per-model, per-device speed statistics. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "history/store_int.h"

/* text -> an FTS5 query in which every word is a quoted string (so nothing
 * the user types is FTS5 syntax), limited to a column when asked. */
static int fts_query(const char *text, enum store_search_in in, struct store_buf *q)
{
    static const char *const prefix[] = {"(", "{answer} : (", "{reasoning} : ("};
    int rc = store_buf_str(q, prefix[in]);
    bool any = false;
    const char *p = text;
    while (!rc && *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        rc = store_buf_str(q, any ? " \"" : "\"");
        while (!rc && *p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = *p == '"' ? store_buf_add(q, "\"\"", 2) : store_buf_add(q, p, 1);
            p++;
        }
        if (!rc)
            rc = store_buf_str(q, "\"");
        any = true;
    }
    if (!rc)
        rc = store_buf_str(q, ")");
    return rc ? rc : any ? 0 : EINVAL;
}

int store_search(struct store *s, const char *text, enum store_search_in in, int limit,
                 int (*fn)(void *ctx, const struct store_hit *h), void *ctx, char *err,
                 size_t errlen)
{
    if ((unsigned)in > STORE_SEARCH_REASONING)
        return store_fail(err, errlen, EINVAL, "search in answers, reasoning or all");
    struct store_buf q = {0};
    sqlite3_stmt *st = NULL;
    int rc = fts_query(text ? text : "", in, &q);
    if (rc) {
        store_buf_free(&q);
        return rc == EINVAL ? store_fail(err, errlen, EINVAL, "nothing to search for")
                            : store_fail(err, errlen, rc, "out of memory");
    }
    if ((rc = store_prepare(s,
                            "SELECT m.id, m.conversation_id, coalesce(c.title, ''), m.role,"
                            " snippet(messages_fts, 0, char(2), char(3), '…', 12),"
                            " snippet(messages_fts, 1, char(2), char(3), '…', 12)"
                            " FROM messages_fts"
                            " JOIN messages m ON m.id = messages_fts.rowid"
                            " JOIN conversations c ON c.id = m.conversation_id"
                            " WHERE messages_fts MATCH ?1 AND c.deleted IS NULL"
                            " ORDER BY rank, m.id LIMIT ?2",
                            &st, err, errlen)))
        goto out;
    sqlite3_bind_text(st, 1, q.p, (int)q.n, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 100);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ans = store_col_text(st, 4), *rea = store_col_text(st, 5);
        bool in_reasoning = in == STORE_SEARCH_REASONING ||
                            (in == STORE_SEARCH_ALL && !strchr(ans, '\x02'));
        const char *role = store_col_text(st, 3);
        struct store_hit h = {
            .message_id = sqlite3_column_int64(st, 0),
            .conv_id = sqlite3_column_int64(st, 1),
            .title = store_col_text(st, 2),
            .role = !strcmp(role, "assistant") ? STORE_ROLE_ASSISTANT
                    : !strcmp(role, "system")  ? STORE_ROLE_SYSTEM
                                               : STORE_ROLE_USER,
            .in_reasoning = in_reasoning,
            .snippet = in_reasoning ? rea : ans,
        };
        if ((rc = fn(ctx, &h)))
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "searching");
out:
    sqlite3_finalize(st);
    store_buf_free(&q);
    return rc;
}

/* ---- statistics ---- */

struct series {
    double *v;
    size_t n, cap;
};

static int series_add(struct series *x, double v)
{
    if (x->n == x->cap) {
        size_t ncap = x->cap ? 2 * x->cap : 32;
        double *p = realloc(x->v, ncap * sizeof *p);
        if (!p)
            return ENOMEM;
        x->v = p;
        x->cap = ncap;
    }
    x->v[x->n++] = v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void series_pct(struct series *x, double *median, double *p95)
{
    if (x->n)
        qsort(x->v, x->n, sizeof *x->v, cmp_double);
    *median = store_percentile(x->v, x->n, 0.5);
    *p95 = store_percentile(x->v, x->n, 0.95);
}

struct group {
    char *model, *backend, *device;
    int64_t n_runs;
    struct series pp, tg, ttft;
};

static void group_clear(struct group *g)
{
    free(g->model);
    free(g->backend);
    free(g->device);
    free(g->pp.v);
    free(g->tg.v);
    free(g->ttft.v);
    memset(g, 0, sizeof *g);
}

static int group_emit(struct group *g, int (*fn)(void *ctx, const struct store_stats *st),
                      void *ctx)
{
    struct store_stats st = {.model = g->model, .backend = g->backend, .device = g->device,
                             .n_runs = g->n_runs};
    series_pct(&g->pp, &st.prompt_tps_median, &st.prompt_tps_p95);
    series_pct(&g->tg, &st.gen_tps_median, &st.gen_tps_p95);
    series_pct(&g->ttft, &st.ttft_ms_median, &st.ttft_ms_p95);
    return fn(ctx, &st);
}

int store_stats(struct store *s, const char *model,
                int (*fn)(void *ctx, const struct store_stats *st), void *ctx, char *err,
                size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct group g = {0};
    bool open = false;
    int rc = store_prepare(s,
                           "SELECT coalesce(mo.name, '(unknown model)') AS name, r.backend,"
                           " r.device, r.prompt_tps, r.gen_tps, r.ttft_ms"
                           " FROM runs r LEFT JOIN models mo ON mo.id = r.model_id"
                           " WHERE ?1 IS NULL OR instr(lower(name), lower(?1)) > 0"
                           " ORDER BY name, r.backend, r.device",
                           &st, err, errlen);
    if (rc)
        return rc;
    if (model)
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = store_col_text(st, 0), *be = store_col_text(st, 1),
                   *dev = store_col_text(st, 2);
        if (open && (strcmp(name, g.model) || strcmp(be, g.backend) || strcmp(dev, g.device))) {
            rc = group_emit(&g, fn, ctx);
            group_clear(&g);
            open = false;
            if (rc)
                goto out;
        }
        if (!open) {
            g.model = strdup(name);
            g.backend = strdup(be);
            g.device = strdup(dev);
            open = true;
            if (!g.model || !g.backend || !g.device) {
                rc = store_fail(err, errlen, ENOMEM, "out of memory");
                goto out;
            }
        }
        g.n_runs++;
        double pp = sqlite3_column_double(st, 3), tg = sqlite3_column_double(st, 4);
        if ((sqlite3_column_type(st, 3) != SQLITE_NULL && pp > 0 && series_add(&g.pp, pp)) ||
            (sqlite3_column_type(st, 4) != SQLITE_NULL && tg > 0 && series_add(&g.tg, tg)) ||
            (sqlite3_column_type(st, 5) != SQLITE_NULL &&
             series_add(&g.ttft, sqlite3_column_double(st, 5)))) {
            rc = store_fail(err, errlen, ENOMEM, "out of memory");
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "reading statistics");
    else if (open)
        rc = group_emit(&g, fn, ctx);
out:
    group_clear(&g);
    sqlite3_finalize(st);
    return rc;
}

int store_model_speed(struct store *s, const char *fingerprint, const char *backend,
                      int n_gpu_layers, int recent, struct store_speed *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!fingerprint || !*fingerprint)
        return store_fail(err, errlen, EINVAL, "a model's speed needs its fingerprint");
    if (recent <= 0 || recent > STORE_SPEED_RECENT_MAX)
        recent = recent <= 0 ? STORE_SPEED_RECENT : STORE_SPEED_RECENT_MAX;
    sqlite3_stmt *st = NULL;
    double tg[STORE_SPEED_RECENT_MAX], pp[STORE_SPEED_RECENT_MAX];
    size_t ntg = 0, npp = 0;
    int rc = store_prepare(s,
                           "SELECT r.gen_tps, r.prompt_tps, r.n_gpu_layers, r.n_threads"
                           " FROM runs r JOIN models mo ON mo.id = r.model_id"
                           " WHERE mo.fingerprint = ?1 AND (?2 IS NULL OR r.backend = ?2)"
                           "   AND (?3 < 0 OR r.n_gpu_layers = ?3)"
                           "   AND r.reasoning_tokens + r.answer_tokens >= ?4"
                           "   AND r.gen_tps > 0"
                           " ORDER BY r.created DESC, r.id DESC LIMIT ?5",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    if (backend)
        sqlite3_bind_text(st, 2, backend, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, n_gpu_layers);
    sqlite3_bind_int(st, 4, STORE_SPEED_MIN_TOKENS);
    sqlite3_bind_int(st, 5, recent);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_runs == 0) {
            out->n_gpu_layers = sqlite3_column_int(st, 2);
            out->n_threads = sqlite3_column_int(st, 3);
        }
        out->n_runs++;
        tg[ntg++] = sqlite3_column_double(st, 0);
        if (sqlite3_column_type(st, 1) != SQLITE_NULL && sqlite3_column_double(st, 1) > 0)
            pp[npp++] = sqlite3_column_double(st, 1);
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "reading a model's speed");
        memset(out, 0, sizeof *out);
    } else {
        qsort(tg, ntg, sizeof *tg, cmp_double);
        qsort(pp, npp, sizeof *pp, cmp_double);
        out->gen_tps_median = store_percentile(tg, ntg, 0.5);
        out->prompt_tps_median = store_percentile(pp, npp, 0.5);
    }
    sqlite3_finalize(st);
    return rc;
}
