/* What a model switch will cost, from the loads and runs the store recorded,
 * and the line the interface shows before and after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/switch.h"
#include "ui/transcript.h"

/* What a model's loads are recorded under: its file, or a remote's label. */
static const char *load_path(const struct ui_model *m)
{
    return m->path && *m->path ? m->path : m->name && *m->name ? m->name : NULL;
}

struct speed {
    const char *name;
    double tps;
    long long runs;
};

static int speed_fn(void *ctx, const struct store_stats *st)
{
    struct speed *s = ctx;
    if (!strcmp(st->model, s->name) && st->n_runs > s->runs && st->prompt_tps_median > 0) {
        s->tps = st->prompt_tps_median;
        s->runs = st->n_runs;
    }
    return 0;
}

void switch_estimate(struct store *store, const struct ui_model *m, int tokens,
                     double disk_mb_s, struct switch_cost *out)
{
    char err[256];
    memset(out, 0, sizeof *out);
    out->tokens = tokens > 0 ? tokens : 0;
    if (disk_mb_s <= 0)
        disk_mb_s = SWITCH_DISK_MB_S;
    /* by path only: the picker redraws this, and a fingerprint reads the file */
    double ms;
    if (store && load_path(m) && !store_model_load_get(store, load_path(m), NULL, &ms, err,
                                                       sizeof err)) {
        out->load_ms = ms;
        out->load_recorded = true;
    }
    if (!out->load_recorded)
        out->load_ms = m->remote ? SWITCH_REMOTE_LOAD_MS : m->file_size / (disk_mb_s * 1e3);
    struct speed sp = {m->name, 0, 0};
    if (store && m->name && *m->name)
        store_stats(store, m->name, speed_fn, &sp, err, sizeof err);
    out->speed_recorded = sp.tps > 0;
    out->reread_ms = out->tokens * 1000.0 / (sp.tps > 0 ? sp.tps : SWITCH_PROMPT_TPS);
}

const char *switch_secs(double ms, char *buf, size_t cap)
{
    if (ms < 10000)
        snprintf(buf, cap, "%.1f s", ms / 1000);
    else
        snprintf(buf, cap, "%.0f s", ms / 1000);
    return buf;
}

const char *switch_text(const struct switch_cost *c, char *buf, size_t cap)
{
    char a[32], b[32], n[32];
    if (c->tokens > 0)
        snprintf(buf, cap, "switch: load ≈ %s, re-read %s tokens ≈ %s", switch_secs(c->load_ms, a,
                 sizeof a), tr_count(c->tokens, n, sizeof n), switch_secs(c->reread_ms, b, sizeof b));
    else
        snprintf(buf, cap, "switch: load ≈ %s", switch_secs(c->load_ms, a, sizeof a));
    return buf;
}

void switch_record_load(struct store *store, const struct ui_model *m, double ms)
{
    char err[256], fp[STORE_FINGERPRINT_SIZE] = "";
    if (!store || !load_path(m))
        return;
    if (!m->remote && m->path)
        store_model_fingerprint(m->path, fp, err, sizeof err);   /* "" when unreadable */
    store_model_load_set(store, load_path(m), fp[0] ? fp : NULL, ms, err, sizeof err);
}
