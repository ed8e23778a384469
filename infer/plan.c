/* The memory plan (plan.h): which layers, experts and output head go to the
 * device, what stays in host memory, and the bytes a token reads in each
 * place.  Byte counts only; the rules are model.c's, written down once. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "infer/plan.h"

/* Saturating arithmetic: a sum past 2^64 bytes is "too much" either way. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static uint64_t layer_w(const struct plan_model *m, int i)
{
    return m->layer_bytes ? m->layer_bytes[i] : 0;
}

static uint64_t expert_w(const struct plan_model *m, int i)
{
    return m->expert_bytes ? m->expert_bytes[i] : 0;
}

/* The routed-expert bytes one token reads in layer i: n_expert_used of them. */
static uint64_t expert_read(const struct plan_model *m, int i)
{
    uint64_t e = expert_w(m, i);
    if (!e || m->n_expert <= 0)
        return e;
    int used = m->n_expert_used < 0 ? 0 : m->n_expert_used > m->n_expert ? m->n_expert : m->n_expert_used;
    return (uint64_t)((long double)e * used / m->n_expert);
}

static bool has_experts(const struct plan_model *m)
{
    if (!m->expert_bytes || m->n_expert <= 0)
        return false;
    for (int i = 0; i < m->n_layer; i++)
        if (m->expert_bytes[i])
            return true;
    return false;
}

/* Fills the totals of out from its placement fields. */
static void plan_totals(const struct plan_model *m, const struct plan_request *r, uint64_t kv_layer,
                        struct plan *out)
{
    uint64_t gpu = 0, host = add_sat(m->embd_bytes, m->scratch_bytes);
    uint64_t gtok = 0, htok = m->embd_row_bytes;
    if (out->n_gpu_layers > 0)
        gpu = m->scratch_bytes;
    for (int i = 0; i < m->n_layer; i++) {
        bool on_gpu = i < out->n_gpu_layers;
        uint64_t lw = add_sat(layer_w(m, i), kv_layer);
        if (on_gpu) {
            gpu = add_sat(gpu, lw);
            gtok = add_sat(gtok, layer_w(m, i));
            if (out->experts_on_cpu) {
                host = add_sat(host, expert_w(m, i));
                htok = add_sat(htok, expert_read(m, i));
            } else {
                gpu = add_sat(gpu, expert_w(m, i));
                gtok = add_sat(gtok, expert_read(m, i));
            }
        } else {
            host = add_sat(add_sat(host, lw), expert_w(m, i));
            htok = add_sat(add_sat(htok, layer_w(m, i)), expert_read(m, i));
        }
    }
    if (out->output_on_gpu) {
        gpu = add_sat(gpu, m->output_bytes);
        gtok = add_sat(gtok, m->output_bytes);
    } else {
        host = add_sat(host, m->output_bytes);
        htok = add_sat(htok, m->output_bytes);
    }
    out->gpu_bytes = gpu;
    out->host_bytes = host;
    out->gpu_token_bytes = gtok;
    out->host_token_bytes = htok;
    out->fits = r->host_budget == 0 || host <= r->host_budget;
    if (!out->fits)
        snprintf(out->where, sizeof out->where, "does not fit");
    else if (out->n_gpu_layers == 0)
        snprintf(out->where, sizeof out->where, "CPU only");
    else if (out->experts_on_cpu)
        snprintf(out->where, sizeof out->where, "experts in RAM");
    else if (out->n_gpu_layers == m->n_layer && out->output_on_gpu)
        snprintf(out->where, sizeof out->where, "all on the device");
    else
        snprintf(out->where, sizeof out->where, "%d of %d layers on the device", out->n_gpu_layers,
                 m->n_layer);
}

/* Experts in RAM: every layer's attention, shared experts and KV cache on
 * the device, the output too when it fits (or when forced). */
static bool try_experts_cpu(const struct plan_model *m, const struct plan_request *r,
                            uint64_t kv_layer, bool forced, struct plan *out)
{
    uint64_t used = m->scratch_bytes;
    for (int i = 0; i < m->n_layer; i++)
        used = add_sat(used, add_sat(layer_w(m, i), kv_layer));
    if (!forced && used > r->device_budget)
        return false;
    out->n_gpu_layers = m->n_layer;
    out->experts_on_cpu = true;
    out->output_on_gpu = forced || add_sat(used, m->output_bytes) <= r->device_budget;
    return true;
}

int plan_make(const struct plan_model *m, const struct plan_request *r, struct plan *out)
{
    memset(out, 0, sizeof *out);
    if (!m || !r || m->n_layer <= 0)
        return EINVAL;
    out->n_layer = m->n_layer;
    uint64_t kv_layer = mul_sat(m->kv_bytes_per_token, r->n_ctx > 0 ? (uint64_t)r->n_ctx : 0);
    out->kv_bytes = mul_sat(kv_layer, (uint64_t)m->n_layer);
    bool device = r->device_budget > 0 && r->n_gpu_layers != 0;
    bool forced_ngl = r->n_gpu_layers > 0;
    if (!device) {
        plan_totals(m, r, kv_layer, out);
        return 0;
    }
    bool experts = has_experts(m);
    if (experts && !forced_ngl && r->placement == PLAN_EXPERTS_CPU &&
        try_experts_cpu(m, r, kv_layer, true, out)) {
        plan_totals(m, r, kv_layer, out);
        return 0;
    }
    /* the plain layer split, from the first layer */
    int want = r->n_gpu_layers < 0 || r->n_gpu_layers > m->n_layer ? m->n_layer : r->n_gpu_layers;
    uint64_t used = m->scratch_bytes;
    int ngl = 0;
    for (; ngl < want; ngl++) {
        uint64_t add = add_sat(add_sat(layer_w(m, ngl), expert_w(m, ngl)), kv_layer);
        if (!forced_ngl && add_sat(used, add) > r->device_budget)
            break;
        used = add_sat(used, add);
    }
    if (!forced_ngl && ngl < m->n_layer && experts && r->placement == PLAN_AUTO &&
        try_experts_cpu(m, r, kv_layer, false, out)) {
        plan_totals(m, r, kv_layer, out);
        return 0;
    }
    /* the output head goes last, only with every layer; when it does not fit,
     * the last layer makes room for nothing and stays on the CPU with it
     * (model.c's rule: a device that holds every layer also holds the head) */
    if (ngl == m->n_layer && !forced_ngl && add_sat(used, m->output_bytes) > r->device_budget)
        ngl--;
    out->n_gpu_layers = ngl;
    out->output_on_gpu = ngl == m->n_layer;
    plan_totals(m, r, kv_layer, out);
    return 0;
}
